"""Cross-request micro-batching: coalesce concurrent windows into one model forward."""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from flts_streams.forecasting.forecast import ModelInput
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.metrics import Metrics

log = logging.getLogger(__name__)
EARLY_S = 0.001  # a deadline may fire this much early: call_at can run a callback a clock tick before its time


@dataclass
class _Pending:
    model: LoadedModel
    item: ModelInput
    source: str
    future: asyncio.Future = field(repr=False)


@dataclass
class _Outcome:
    """What one forward of a group produced (filled in the executor thread)."""

    group: list[_Pending]
    values: np.ndarray | None = None
    error: BaseException | None = None
    seconds: float = 0.0


class Deadlines:
    """Per-request deadlines served by one timer, armed for the earliest (expiry sets TimeoutError).

    Why not ``loop.call_later`` per request: asyncio keeps a cancelled timer in its heap until it
    is due, so with 10 s budgets the heap held ~40k handles, each push comparing them in Python;
    that timer cost ~9% of a /predict's CPU (A/B in docs/BENCHMARKS.md). Here a request costs a dict
    insert and delete; with equal budgets the timer is re-armed only when it fires.
    """

    def __init__(self) -> None:
        self._due: dict[asyncio.Future, float] = {}  # future -> loop time it expires at
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        return len(self._due)

    def add(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future, timeout: float) -> None:
        """Fail ``future`` with TimeoutError unless it is done (or discarded) within ``timeout`` seconds."""
        at = loop.time() + timeout
        self._due[future] = at
        if at < self._timer_at:
            self._arm(loop, at)

    def discard(self, future: asyncio.Future) -> None:
        """Forget ``future``'s deadline (it finished)."""
        self._due.pop(future, None)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._fire, loop), at

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._timer_at = None, math.inf
        now = loop.time() + EARLY_S
        for future in [f for f, at in self._due.items() if at <= now]:
            del self._due[future]
            _expire(future)
        if self._due:
            self._arm(loop, min(self._due.values()))


class MicroBatcher:
    """Runs windows in batched forwards on one executor thread, one batch at a time.

    While a forward runs, new windows accumulate; the moment it finishes, everything that
    accumulated (up to ``max_batch``) goes as the next batch, so batches grow with load and
    nothing waits for a timer under load. When the executor is free, a batch waits up to
    ``max_wait_s`` for company, except on an idle service (last batch of one), where it goes
    at the end of the current event-loop iteration, with whatever arrived in that iteration.

    Everything here runs on the event loop except the forwards; results are delivered from one
    ``call_soon_threadsafe`` callback per batch (no task hops: each hop is a loop iteration,
    which under overload costs tens of ms).
    """

    def __init__(self, executor: Executor, metrics: Metrics, max_batch: int, max_wait_s: float) -> None:
        self._executor = executor
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_wait = max_wait_s
        self._pending: list[_Pending] = []
        self._busy = False  # a batch is in the executor
        self._flush: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_size = 0
        self._deadlines = Deadlines()

    async def submit(self, model: LoadedModel, item: ModelInput, source: str = "http", timeout: float | None = None) -> np.ndarray:
        """Forecast one window (H, targets) in original units, batched with others.

        After ``timeout`` seconds raise TimeoutError; the window is then left out of the next batch.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append(_Pending(model, item, source, future))
        self._schedule(loop)
        if timeout is None:
            return await future
        self._deadlines.add(loop, future, timeout)
        try:
            return await future
        finally:
            self._deadlines.discard(future)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Arrange the next flush unless one is due anyway (running batch or scheduled flush)."""
        if self._busy:
            return  # the running batch's delivery starts the next one
        full = len(self._pending) >= self._max_batch
        if self._flush is not None:
            if not full:
                return
            self._flush.cancel()  # a full batch does not wait for the timer
        if full or self._last_size <= 1:
            self._flush = loop.call_soon(self._start_batch)  # idle: waiting would only add latency
        else:
            self._flush = loop.call_later(self._max_wait, self._start_batch)

    def _start_batch(self) -> None:
        """Hand up to max_batch live windows to the executor (windows past their timeout are dropped)."""
        self._flush = None
        batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
        batch = [p for p in batch if not p.future.done()]
        if not batch:
            if self._pending:
                self._schedule(asyncio.get_running_loop())
            return
        self._last_size = len(batch)
        self._busy = True
        loop = asyncio.get_running_loop()
        groups = list(_by_model(batch).values())
        try:
            self._executor.submit(_run_groups, groups, lambda outcomes: loop.call_soon_threadsafe(self._deliver, outcomes))
        except RuntimeError as exc:  # executor shut down: the service is stopping
            self._deliver([_Outcome(g, error=exc) for g in groups])

    def _deliver(self, outcomes: list[_Outcome]) -> None:
        """Resolve every window of the finished batch, then start the next batch at once."""
        self._busy = False
        for out in outcomes:
            _resolve(out, self._metrics)
        if self._pending:
            self._start_batch()  # they waited during the forward already


def _run_groups(groups: list[list[_Pending]], done: Callable[[list[_Outcome]], object]) -> None:
    """Executor side: one forward per model group, then one hand-back to the loop."""
    outcomes = []
    for group in groups:
        out = _Outcome(group)
        started = time.perf_counter()
        try:
            out.values = group[0].model.forecaster.predict_inputs([p.item for p in group])
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request
            out.error = exc
        out.seconds = time.perf_counter() - started
        outcomes.append(out)
    done(outcomes)


def _resolve(out: _Outcome, metrics: Metrics) -> None:
    """Set each window's result (or the forward's error) and record the forward."""
    if out.error is not None:
        log.error("batched forward failed model_uri=%s size=%d", out.group[0].model.uri, len(out.group), exc_info=out.error)
        for p in out.group:
            if not p.future.done():
                p.future.set_exception(out.error)
        return
    source = out.group[0].source
    metrics.inference_duration.labels(source).observe(out.seconds)
    metrics.batch_size.labels(source).observe(len(out.group))
    for p, v in zip(out.group, out.values):
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
