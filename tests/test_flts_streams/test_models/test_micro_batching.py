"""MicroBatcher: idle requests go at once, concurrent ones share a forward, failures reach every caller."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from flts_streams.core.metrics import Metrics
from flts_streams.models.micro_batching import Deadlines, MicroBatcher


class _Forecaster:
    """Records the size of every forward; answers each window with its own marker value."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.sizes: list[int] = []
        self.items: list[float] = []
        self.delay, self.fail = delay, fail
        self.lock = threading.Lock()

    def predict_inputs(self, items: list[float]) -> np.ndarray:
        with self.lock:
            self.sizes.append(len(items))
            self.items.extend(items)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("forward failed")
        return np.array([[[item]] for item in items])


def _model(forecaster: _Forecaster) -> SimpleNamespace:
    return SimpleNamespace(forecaster=forecaster, uri="runs:/x/model")


async def _with_batcher(max_wait_s: float, body, max_batch: int = 64, eager_at: int | None = None):
    with ThreadPoolExecutor(1) as pool:
        return await body(MicroBatcher(pool, Metrics(), max_batch=max_batch, max_wait_s=max_wait_s, eager_at=eager_at))


async def _warm(batcher: MicroBatcher, model: SimpleNamespace, n: int) -> None:
    """Forward a batch of n (load seen: the next batch may wait) and let its drain job end."""
    await asyncio.gather(*(batcher.submit(model, 0.0) for _ in range(n)))
    await asyncio.sleep(0.05)  # results come back before the executor thread finds the queue empty


async def _occupy(batcher: MicroBatcher, model: SimpleNamespace, value: float = 0.0) -> asyncio.Task:
    """Submit one window to an idle batcher (it goes at once) and let its forward start."""
    first = asyncio.create_task(batcher.submit(model, value))
    await asyncio.sleep(0.02)
    return first


def test_lone_request_does_not_wait_for_company():
    fc = _Forecaster()

    async def body(batcher):
        started = time.perf_counter()
        out = await batcher.submit(_model(fc), 7.0)
        return out, time.perf_counter() - started

    out, took = asyncio.run(_with_batcher(1.0, body))  # a 1 s batch wait would be obvious
    assert out.tolist() == [[7.0]] and took < 0.5 and fc.sizes == [1]


def test_concurrent_requests_share_forwards_and_get_their_own_answers():
    fc = _Forecaster(delay=0.05)
    model = _model(fc)

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(model, float(i)) for i in range(40)))

    outs = asyncio.run(_with_batcher(0.01, body))
    assert [o[0][0] for o in outs] == [float(i) for i in range(40)]
    assert sum(fc.sizes) == 40 and max(fc.sizes) > 1 and len(fc.sizes) < 40


def test_under_load_the_batcher_waits_to_fill_a_batch():
    fc = _Forecaster()
    model = _model(fc)

    async def body(batcher):
        await _warm(batcher, model, 4)

        async def trickle(i: int) -> np.ndarray:
            await asyncio.sleep(0.002 * i)
            return await batcher.submit(model, float(i))

        return await asyncio.gather(*(trickle(i) for i in range(5)))

    asyncio.run(_with_batcher(0.2, body))
    assert fc.sizes[-1] == 5, f"trickling requests should have been coalesced: {fc.sizes}"


def test_a_failed_forward_reaches_every_waiting_request():
    fc = _Forecaster(fail=True)
    model = _model(fc)

    async def body(batcher):
        return await asyncio.gather(*(batcher.submit(model, 1.0) for _ in range(3)), return_exceptions=True)

    outs = asyncio.run(_with_batcher(0.01, body))
    assert all(isinstance(o, RuntimeError) for o in outs)


@pytest.mark.parametrize("size", [1, 3])
def test_batch_size_is_recorded(size):
    fc = _Forecaster()
    metrics = Metrics()

    async def run():
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(pool, metrics, max_batch=64, max_wait_s=0.01)
            await asyncio.gather(*(batcher.submit(_model(fc), 1.0, source="claims") for _ in range(size)))

    asyncio.run(run())
    assert metrics.registry.get_sample_value("flts_inference_batch_size_sum", {"source": "claims"}) == size


def test_a_request_past_its_timeout_fails_at_once_and_leaves_the_queue():
    fc = _Forecaster(delay=0.3)
    model = _model(fc)

    async def body(batcher):
        busy = await _occupy(batcher, model, 1.0)  # holds the executor for 0.3 s
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            await batcher.submit(model, 2.0, timeout=0.05)
        took = time.perf_counter() - started
        await busy
        await batcher.submit(model, 3.0, timeout=5.0)
        return took

    took = asyncio.run(_with_batcher(0.01, body))
    assert took < 0.25, f"the timeout fired after {took:.2f}s, not at 0.05 s"
    assert fc.items == [1.0, 3.0], "the expired window must not be forwarded"


def test_windows_arriving_during_a_forward_go_right_after_it_without_the_batch_wait():
    fc = _Forecaster(delay=0.1)
    model = _model(fc)

    async def body(batcher):
        first = await _occupy(batcher, model)
        started = time.perf_counter()
        await asyncio.gather(*(batcher.submit(model, float(i)) for i in range(1, 4)))
        await first
        return time.perf_counter() - started

    took = asyncio.run(_with_batcher(2.0, body))  # a 2 s batch wait would be obvious
    assert fc.sizes == [1, 3] and took < 1.0, (fc.sizes, took)


def test_the_next_batch_starts_when_a_forward_ends_even_while_the_event_loop_is_busy():
    fc = _Forecaster(delay=0.1)
    model = _model(fc)

    async def body(batcher):
        first = await _occupy(batcher, model)
        rest = [asyncio.create_task(batcher.submit(model, float(i))) for i in (1, 2)]
        await asyncio.sleep(0)  # both queued during the first forward
        time.sleep(0.35)  # the loop is busy well past the first forward's end
        seen = list(fc.sizes)  # forwards begun without the loop's help
        await asyncio.gather(first, *rest)
        return seen

    seen = asyncio.run(_with_batcher(2.0, body))
    assert seen == [1, 2], f"the queued windows waited for the event loop to hand them over: {seen}"


def test_no_window_is_stranded_when_the_queue_runs_dry_as_new_windows_arrive():
    # Closed-loop clients submit the moment their answer is back, i.e. while the executor thread
    # is between finding the queue empty and ending its drain job: the window must still go.
    fc = _Forecaster()
    model = _model(fc)
    rng = random.Random(7)

    async def body(batcher):
        async def client(c: int) -> list[float]:
            outs = []
            for i in range(400):
                if rng.random() < 0.2:
                    await asyncio.sleep(0)
                outs.append(float((await asyncio.wait_for(batcher.submit(model, float(c * 1000 + i)), 5))[0][0]))
            return outs

        return await asyncio.gather(*(client(c) for c in range(3)))

    outs = asyncio.run(_with_batcher(0.0005, body, max_batch=2))
    assert outs == [[float(c * 1000 + i) for i in range(400)] for c in range(3)]
    assert sum(fc.sizes) == 1200 and max(fc.sizes) <= 2


def test_batches_never_exceed_max_batch_and_a_full_batch_does_not_wait():
    fc = _Forecaster(delay=0.01)
    model = _model(fc)

    async def body(batcher):
        await asyncio.gather(*(batcher.submit(model, 0.0) for _ in range(2)))  # load seen: the next batch may wait
        started = time.perf_counter()
        outs = await asyncio.gather(*(batcher.submit(model, float(i)) for i in range(10)))
        return outs, time.perf_counter() - started

    outs, took = asyncio.run(_with_batcher(2.0, body, max_batch=4, eager_at=4))
    assert [o[0][0] for o in outs] == [float(i) for i in range(10)]
    assert max(fc.sizes) <= 4 and fc.sizes[1:3] == [4, 4]
    assert took < 1.9, f"full batches must not wait for the 2 s timer (took {took:.2f}s)"


def test_windows_of_different_models_in_one_batch_get_their_own_model():
    a, b = _Forecaster(), _Forecaster()

    async def body(batcher):
        return await asyncio.gather(
            batcher.submit(_model(a), 1.0), batcher.submit(_model(b), 2.0), batcher.submit(_model(a), 3.0)
        )

    outs = asyncio.run(_with_batcher(0.01, body))
    assert [o[0][0] for o in outs] == [1.0, 2.0, 3.0] and a.items == [1.0, 3.0] and b.items == [2.0]


def test_deadlines_fire_in_order_each_once_on_time_and_leave_nothing_behind():
    async def run():
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        futures = {budget: loop.create_future() for budget in (0.20, 0.05, 0.10, 5.0)}
        expired: list[tuple[float, float]] = []
        started = loop.time()
        for budget, future in futures.items():
            deadlines.add(loop, future, budget)
            future.add_done_callback(lambda f, b=budget: expired.append((b, loop.time() - started)))
        finished = loop.create_future()
        deadlines.add(loop, finished, 0.15)
        finished.set_result(1)  # done before its deadline: not touched
        deadlines.discard(finished)
        futures[5.0].set_result(2)
        deadlines.discard(futures[5.0])
        await asyncio.sleep(0.3)
        return deadlines, futures, expired, finished

    deadlines, futures, expired, finished = asyncio.run(run())
    # In deadline order even when the timer fires late and finds several expired (seen on a machine
    # with a CPU hog per core: 0.10 and 0.20 expired together, then in insertion order).
    assert [b for b, _ in expired if b != 5.0] == [0.05, 0.10, 0.20]
    for budget, at in expired:
        if budget != 5.0:
            # Never early; "on time" within a second, which a loaded machine still meets.
            assert budget - 0.002 <= at < budget + 1.0, f"the {budget}s deadline fired at {at:.3f}s"
            assert isinstance(futures[budget].exception(), TimeoutError)
    assert finished.result() == 1 and futures[5.0].result() == 2
    assert len(deadlines) == 0


def test_requests_with_equal_budgets_do_not_arm_a_timer_each():
    async def run():
        loop = asyncio.get_running_loop()
        deadlines, armed = Deadlines(), []
        real = loop.call_at
        loop.call_at = lambda *a, **k: armed.append(a[0]) or real(*a, **k)  # count the timers armed
        for _ in range(1000):
            future = loop.create_future()
            deadlines.add(loop, future, 10.0)
            future.set_result(None)
            deadlines.discard(future)
        return armed, len(deadlines)

    armed, left = asyncio.run(run())
    assert len(armed) == 1 and left == 0


def test_a_forward_starts_inside_submit_once_eager_at_windows_are_queued():
    # At 64 connections every request is parsed in one loop iteration: the forward must not wait
    # for the iteration to end (the executor thread takes the batch at its next GIL turn).
    fc = _Forecaster()
    model = _model(fc)

    async def busy_after(batcher: MicroBatcher, values: list[float]) -> tuple[list[asyncio.Task], list[int]]:
        tasks = [asyncio.create_task(batcher.submit(model, v)) for v in values]
        await asyncio.sleep(0)  # they submit in this iteration, then the loop is busy
        time.sleep(0.2)
        return tasks, list(fc.sizes)

    async def body(batcher):
        await _warm(batcher, model, 2)  # a batch would now wait 2 s for company
        fc.sizes.clear()
        first, below = await busy_after(batcher, [1.0, 2.0])
        rest, reached = await busy_after(batcher, [3.0])
        outs = await asyncio.gather(*first, *rest)
        return below, reached, [o[0][0] for o in outs]

    below, reached, outs = asyncio.run(_with_batcher(2.0, body, max_batch=8, eager_at=3))
    assert below == [], f"two windows (eager_at=3) should have waited for company: {below}"
    assert reached == [3], f"the third window should have started a forward of three at once: {reached}"
    assert outs == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("max_batch,eager_at,expected", [(64, None, 32), (1, None, 1), (8, 20, 8), (8, 0, 1)])
def test_eager_at_defaults_to_half_a_batch_and_stays_within_one(max_batch, eager_at, expected):
    batcher = MicroBatcher(ThreadPoolExecutor(1), Metrics(), max_batch=max_batch, max_wait_s=0.01, eager_at=eager_at)
    assert batcher._eager_at == expected


def test_a_late_timer_expires_what_it_finds_in_deadline_order():
    """A busy machine fires the timer late; the deadlines it finds expired still go in their order."""
    import time

    async def run():
        loop = asyncio.get_running_loop()
        deadlines, order = Deadlines(), []
        for budget in (0.03, 0.01, 0.02):
            future = loop.create_future()
            deadlines.add(loop, future, budget)
            future.add_done_callback(lambda f, b=budget: order.append(b))
        time.sleep(0.1)  # the loop is blocked past every deadline, as on a loaded machine
        await asyncio.sleep(0.05)
        return order

    assert asyncio.run(run()) == [0.01, 0.02, 0.03]
