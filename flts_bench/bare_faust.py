"""The framework ceiling of `flts bench claims`: a bare Faust app, run as `faust -A flts_bench.bare_faust worker`.

Same broker, Faust defaults and producer settings as the worker (Settings().faust_defaults(), so
the embedded profile's one-record batches too); one agent that reads each claim and produces one
result of about a worker result's size. What Faust and the broker cost before any of our work:
the analogue of the bare aiohttp handler of `flts bench http`.
"""

from __future__ import annotations

import faust
from faust.web import Request, Response, View

from flts_streams.core.settings import FAUST_ENV_PREFIX, Settings

BARE_IN, BARE_OUT = "bench-faust-in", "bench-faust-out"
RESULT_BYTES = 4_600  # a worker's result record (30 steps, point + 3 quantiles, the claim's fields) is ~4.6 KB
FILLER = b" " * RESULT_BYTES

app = faust.App("flts-bench-bare", env_prefix=FAUST_ENV_PREFIX, **Settings().faust_defaults())
claims_in = app.topic(BARE_IN, key_serializer="raw", value_serializer="raw")
results_out = app.topic(BARE_OUT, key_serializer="raw", value_serializer="raw")


@app.agent(claims_in)
async def bare(stream: faust.StreamT) -> None:
    """One result per claim, sent before the claim's offset is committed (at least once, like the worker)."""
    async for event in stream.events():
        await results_out.send(key=event.key, value=event.value + FILLER)


@app.page("/readyz")
class Ready(View):
    """200 once the web server runs (the benchmark then waits for a first result)."""

    async def get(self, request: Request) -> Response:
        return self.json({"ready": True})
