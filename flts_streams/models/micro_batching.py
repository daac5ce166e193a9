"""Cross-request micro-batching: coalesce concurrent windows into one model forward."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from flts_streams.core.metrics import Metrics
from flts_streams.forecasting.forecast import ModelInput
from flts_streams.forecasting.packaging import LoadedModel

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
        # In deadline order: a timer that fires late (a busy machine) may find several expired.
        for future in sorted((f for f, at in self._due.items() if at <= now), key=self._due.__getitem__):
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

    Once ``eager_at`` windows are queued on a free executor, the drain starts right there, inside
    ``submit``: at 64 connections the loop otherwise ran in lock-step (every request's parsing in
    one iteration, then one forward with the loop idle, then every reply), and starting the forward
    half-way lets it run while the loop still parses the rest (A/B in docs/BENCHMARKS.md). That was with
    LSTM forwards; with the MLP served since, a cap of 128 (eager at 64, so not at 64 connections) won
    1.03-1.06x over 64 (FLTS_SERVING__MAX_BATCH_SIZE's default since 2026-12-07).

    Windows reach the executor thread through a queue it drains itself: once a drain job runs, it
    takes the next batch the moment a forward ends, without a round trip through the event loop
    (handing each batch over from the loop left the forward idle ~5 ms per batch at 64 connections,
    waiting for the executor thread to win the GIL and for the loop to reach the delivery; A/B in
    docs/BENCHMARKS.md). Results are delivered from one ``call_soon_threadsafe`` callback per batch
    (no task hops: each hop is a loop iteration, which under overload costs tens of ms).
    """

    def __init__(
        self, executor: Executor, metrics: Metrics, max_batch: int, max_wait_s: float, eager_at: int | None = None
    ) -> None:
        self._executor = executor
        self._metrics = metrics
        self._max_batch = max_batch
        self._eager_at = max(1, min(max_batch // 2 if eager_at is None else eager_at, max_batch))
        self._max_wait = max_wait_s
        self._queue: deque[_Pending] = deque()
        self._lock = threading.Lock()  # makes "queue ran dry" and "drain job ended" one step
        self._draining = False  # a drain job owns the executor: what is queued goes without a flush
        self._flush: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_size = 0
        self._deadlines = Deadlines()

    async def submit(
        self, model: LoadedModel, item: ModelInput, source: str = "http", timeout: float | None = None
    ) -> np.ndarray:
        """Forecast one window (H, targets) in original units, batched with others.

        After ``timeout`` seconds raise TimeoutError; the window is then left out of the next batch.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._queue.append(_Pending(model, item, source, future))
            draining, queued = self._draining, len(self._queue)
        if not draining:
            if queued >= self._eager_at:
                self._start_drain(loop)
            else:
                self._schedule(loop)
        if timeout is None:
            return await future
        self._deadlines.add(loop, future, timeout)
        try:
            return await future
        finally:
            self._deadlines.discard(future)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Arrange the next drain unless one is scheduled."""
        if self._flush is not None:
            return
        if self._last_size <= 1:
            self._flush = loop.call_soon(self._start_drain, loop)  # idle: waiting would only add latency
        else:
            self._flush = loop.call_later(self._max_wait, self._start_drain, loop)

    def _start_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the queue to the executor thread (event loop side)."""
        if self._flush is not None:
            self._flush.cancel()  # no-op when it is this very callback
            self._flush = None
        with self._lock:
            if self._draining or not self._queue:
                return
            self._draining = True
        try:
            self._executor.submit(self._drain, loop)
        except RuntimeError as exc:  # executor shut down: the service is stopping
            with self._lock:
                self._draining = False
                batch, self._queue = list(self._queue), deque()
            self._deliver([_Outcome(g, error=exc) for g in _by_model(batch).values()])

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Executor side: forward batch after batch until the queue is empty."""
        while batch := self._take():
            outcomes = _run_groups(list(_by_model(batch).values()))
            loop.call_soon_threadsafe(self._deliver, outcomes)

    def _take(self) -> list[_Pending]:
        """Up to max_batch live windows off the queue (expired ones dropped); [] ends the drain job."""
        batch: list[_Pending] = []
        with self._lock:
            while self._queue and len(batch) < self._max_batch:
                p = self._queue.popleft()
                if not p.future.done():  # past its timeout (set on the loop; a stale read only forwards it once more)
                    batch.append(p)
            if not batch:
                self._draining = False
        if batch:
            self._last_size = len(batch)
        return batch

    def _deliver(self, outcomes: list[_Outcome]) -> None:
        """Resolve every window of a finished batch (event loop side)."""
        for out in outcomes:
            _resolve(out, self._metrics)


def _run_groups(groups: list[list[_Pending]]) -> list[_Outcome]:
    """One forward per model group (executor side)."""
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
    return outcomes


def _resolve(out: _Outcome, metrics: Metrics) -> None:
    """Set each window's result (or the forward's error) and record the forward."""
    if out.error is not None:
        log.error(
            "batched forward failed model_uri=%s size=%d", out.group[0].model.uri, len(out.group), exc_info=out.error
        )
        for p in out.group:
            if not p.future.done():
                p.future.set_exception(out.error)
        return
    assert out.values is not None  # no error: the forward returned values
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
