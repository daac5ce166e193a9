"""Admin routes guarded by a bearer token (disabled when no token is configured)."""
import hmac

from faust.web import Request, Response, View

from flts_streams.app import app
from flts_streams.errors import SchemaError, Unauthorized


def _authorize(request: Request) -> None:
    token = app.settings.serving.admin_token
    if token is None:
        raise Unauthorized("admin routes are disabled: set FLTS_SERVING__ADMIN_TOKEN")
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
        raise Unauthorized("missing or wrong admin token (Authorization: Bearer <token>)")


@app.page("/admin/reload")
class Reload(View):
    """Reload champions, or load {"identifier", "model_uri"} explicitly; swaps atomically."""

    async def post(self, request: Request) -> Response:
        _authorize(request)
        body = await request.json() if request.can_read_body else {}
        if not isinstance(body, dict):
            raise SchemaError("body must be a JSON object")
        if body.get("model_uri"):
            identifier = str(body.get("identifier") or "*")
            model = await app.predictor.load(identifier, str(body["model_uri"]))
            return self.json({"loaded": {identifier: {"model_uri": model.uri, "run_id": model.run_id}}})
        count = await app.predictor.load_champions()
        return self.json({"reloaded": count, "models": {k: m.uri for k, m in app.predictor.models().items()}})
