"""GET /openapi.json and a human page at /docs."""
from importlib.metadata import version

from faust.web import Request, Response, View

from flts_streams.app import app
from flts_streams.openapi import docs_html, openapi_document


@app.page("/openapi.json")
class OpenApi(View):
    """The OpenAPI 3 document."""

    async def get(self, request: Request) -> Response:
        return self.json(openapi_document(version("flts-streams")))


@app.page("/docs")
class Docs(View):
    """Routes rendered as HTML."""

    async def get(self, request: Request) -> Response:
        return self.html(docs_html(openapi_document(version("flts-streams"))))
