"""Live accuracy of claim forecasts: per identifier (routed to the owning worker) and a summary."""

import logging
from collections.abc import Iterator

from faust.web import Request, Response, View

from flts_streams.app import app
from flts_streams.core.errors import InvalidInput, UnknownIdentifier
from flts_streams.streaming.live_accuracy import LiveAccuracy, decode_accuracy, overview, report
from tables.forecast_accuracy import forecast_accuracy

log = logging.getLogger(__name__)


@app.page("/accuracy/{identifier}")
class IdentifierAccuracy(View):
    """How the forecasts issued for an identifier's claims did against the actuals its later claims brought."""

    @app.table_route(table=forecast_accuracy, match_info="identifier")  # type: ignore[arg-type]  # faust's hint omits match_info arguments
    async def get(self, request: Request, identifier: str) -> Response:
        payload = forecast_accuracy.get(identifier)
        if payload is None:
            raise UnknownIdentifier(
                f"no forecasts remembered for identifier {identifier!r}; publish claims for it first"
            )
        detail = request.query.get("detail", "").lower() in ("1", "true", "yes")
        return self.json(report(identifier, decode_accuracy(payload), detail=detail))


@app.page("/accuracy")
class AccuracySummary(View):
    """The identifiers this worker owns with the lowest skill over the last day, and figures per model run."""

    async def get(self, request: Request) -> Response:
        body = overview(_local_books(), app.settings.accuracy.summary_worst)
        return self.json({**body, "scope": f"identifiers owned by this worker ({app.conf.canonical_url})"})


def _local_books() -> Iterator[tuple[str, LiveAccuracy]]:
    """The readable forecast_accuracy values of the partitions this worker holds."""
    for key, payload in forecast_accuracy.items():
        identifier = key.decode() if isinstance(key, bytes) else str(key)
        try:
            yield identifier, decode_accuracy(payload)
        except InvalidInput:
            log.warning("unreadable forecast_accuracy value skipped identifier=%s", identifier)
