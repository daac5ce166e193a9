"""Liveness, readiness, compat ping and Prometheus metrics; cheap and never shed."""
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flts_streams.app import app


@app.page("/healthz")
class Healthz(View):
    """Liveness: the event loop answers (never touches Kafka)."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/readyz")
class Readyz(View):
    """Readiness: table recovery done and at least one model loaded."""

    async def get(self, request: Request) -> Response:
        recovered = app.tables.recovery.completed.is_set() and not app.rebalancing
        model = app.predictor.has_model
        body = {"ready": recovered and model, "recovered": recovered, "model_loaded": model}
        return self.json(body, status=200 if recovered and model else 503)


@app.page("/metrics")
class Metrics(View):
    """Prometheus text exposition of our metrics and Faust's sensor."""

    async def get(self, request: Request) -> Response:
        return self.bytes(generate_latest(app.metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
