"""Liveness, readiness, compat ping and Prometheus metrics; cheap and never shed."""

import time
from typing import cast

from faust.tables.manager import TableManager
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flts_streams.app import app
from flts_streams.serving.readiness import observe_broker, readiness


@app.page("/healthz")
class Healthz(View):
    """Liveness: the event loop answers (never touches Kafka)."""

    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/readyz")
class Readyz(View):
    """Readiness: tables recovered, the initial model load over with a model, the broker reachable (ServingSettings)."""

    async def get(self, request: Request) -> Response:
        now = time.monotonic()
        observe_broker(app, now)
        recovered = cast(TableManager, app.tables).recovery.completed.is_set() and not app.rebalancing
        body, status = readiness(
            recovered, app.models.ready, app.broker_watch, now, app.settings.serving.ready_requires_broker
        )
        return self.json(body, status=status)


@app.page("/metrics")
class Metrics(View):
    """Prometheus text exposition of our metrics and Faust's sensor."""

    async def get(self, request: Request) -> Response:
        return self.bytes(generate_latest(app.metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
