"""Cross-request micro-batching: coalesce concurrent windows into one model forward."""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from flts_streams.forecasting.forecast import ModelInput
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    model: LoadedModel
    item: ModelInput
    source: str
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collects windows for up to ``max_wait_s`` (or ``max_batch``) and runs them together.

    While one forward runs in the executor, new requests accumulate, so batches grow
    with load. The wait is adaptive: after a batch of one (an idle service) the next
    lone request goes at once instead of waiting for company that is not coming.
    """

    def __init__(self, executor: Executor, metrics: Metrics, max_batch: int, max_wait_s: float) -> None:
        self._executor = executor
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_wait = max_wait_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._last_size = 0

    async def submit(self, model: LoadedModel, item: ModelInput, source: str = "http", timeout: float | None = None) -> np.ndarray:
        """Forecast one window (H, targets) in original units, batched with others.

        After ``timeout`` seconds raise TimeoutError; the window is then left out of the next batch.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put_nowait(_Pending(model, item, source, future))
        if timeout is None:
            return await future
        # One timer on the future: asyncio.timeout() cost ~5% of the event loop per request.
        timer = loop.call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    async def run(self) -> None:
        """Batching loop; runs for the life of the owning service."""
        while True:
            batch = await self._collect()
            for group in _by_model(batch).values():
                await self._forward(group)

    async def _collect(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        while len(batch) < self._max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            if len(batch) == 1 and self._last_size <= 1:
                break  # idle: waiting would only add latency
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        self._last_size = len(batch)
        return [p for p in batch if not p.future.done()]  # drop requests that timed out

    async def _forward(self, group: list[_Pending]) -> None:
        if not group:
            return
        model = group[0].model
        started = time.perf_counter()
        try:
            values = await asyncio.get_running_loop().run_in_executor(
                self._executor, model.forecaster.predict_inputs, [p.item for p in group]
            )
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request
            log.exception("batched forward failed model_uri=%s size=%d", model.uri, len(group))
            for p in group:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self._metrics.inference_duration.labels(group[0].source).observe(time.perf_counter() - started)
        self._metrics.batch_size.labels(group[0].source).observe(len(group))
        for p, v in zip(group, values):
            if not p.future.done():
                p.future.set_result(v)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _by_model(batch: list[_Pending]) -> dict[tuple[int, str], list[_Pending]]:
    # Grouped by source too, so batch-size and duration metrics stay per source.
    groups: dict[tuple[int, str], list[_Pending]] = {}
    for p in batch:
        groups.setdefault((id(p.model), p.source), []).append(p)
    return groups
