"""GET /openapi.json and the API page at /docs (Swagger UI, its assets served from the swagger-ui-py package)."""

from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from types import MappingProxyType

from aiohttp import web
from faust.web import Request, Response, View

from flts_streams.app import app
from flts_streams.core import errors as e
from flts_streams.serving.openapi_spec import SWAGGER_ASSETS, docs_html, openapi_document

CONTENT_TYPES = MappingProxyType({".css": "text/css", ".js": "application/javascript", ".png": "image/png"})


def swagger_static_dir() -> Path:
    """Swagger UI's dist files as the swagger-ui-py package ships them (found without importing it)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise e.NotFound("the API page needs the swagger-ui-py package; /openapi.json has the same content")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@app.page("/openapi.json")
class OpenApi(View):
    """The OpenAPI 3 document."""

    async def get(self, request: Request) -> Response:
        return self.json(openapi_document(version("flts-streams"), app.settings.serving))


@app.page("/docs")
class Docs(View):
    """The API page: every route, its schemas, the example body, and a "try it out"."""

    async def get(self, request: Request) -> Response:
        return self.html(docs_html(f"flts-streams API {version('flts-streams')}"))


@app.page("/docs/static/{name}")
class DocsAsset(View):
    """One of the few Swagger UI files the page loads (nothing else of the package is served)."""

    async def get(self, request: Request, name: str) -> web.StreamResponse:
        if name not in SWAGGER_ASSETS:
            raise e.NotFound(f"no asset {name!r}; the API page is at /docs")
        path = swagger_static_dir() / name
        return web.FileResponse(
            path, headers={"Content-Type": CONTENT_TYPES[path.suffix], "Cache-Control": "public, max-age=86400"}
        )
