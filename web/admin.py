"""Admin routes guarded by a bearer token (disabled when no token is configured)."""

import orjson
from faust.web import Request, Response, View

from flts_streams.app import app
from flts_streams.core.errors import MalformedBody, SchemaError
from flts_streams.serving import admin_rules


def _authorize(request: Request) -> None:
    token = app.settings.serving.admin_token
    admin_rules.authorize(request.headers.get("Authorization"), token.get_secret_value() if token else None)


@app.page("/admin/reload")
class Reload(View):
    """Reload champions, or load {"identifier", "model_uri"} explicitly; swaps atomically."""

    async def post(self, request: Request) -> Response:
        _authorize(request)
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise MalformedBody(f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise SchemaError("body must be a JSON object")
        if body.get("model_uri"):
            identifier = str(body.get("identifier") or "*")
            model = await app.models.load(identifier, admin_rules.model_uri(body["model_uri"]))
            return self.json({"loaded": {identifier: {"model_uri": model.uri, "run_id": model.run_id}}})
        count = await app.models.load_champions()
        return self.json(
            {
                "reloaded": count,
                "models": {k: m.uri for k, m in app.models.models().items()},  # in memory
                "champions_indexed": len(app.models.champions()),  # own champions, loaded on first use
            }
        )
