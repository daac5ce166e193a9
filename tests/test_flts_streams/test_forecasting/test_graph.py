"""The serving graph runs without the GIL: each tensor a call passes is held by C++ until it returns (held_by_cpp)."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.frame import prepare_frame
from flts_streams.forecasting.graph import held_by_cpp
from flts_streams.forecasting.spec import FEATURES
from tests.test_flts_streams.helpers import model

SIDE, STEPS = 320, 120  # a forward of ~0.1 s of CPU (24 steps: ~0.02 s): long enough to see where a thread stops


class _TwoHalves(nn.Module):
    """Half the work, then ``b``'s only use, then the other half: the drop of ``b`` falls mid-forward."""

    def forward(self, a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = a
        for _ in range(STEPS):
            y = torch.tanh(y @ w)
        y = y + b
        for _ in range(STEPS):
            y = torch.tanh(y @ w)
        return y


@pytest.fixture(scope="module")
def two_halves() -> torch.jit.ScriptModule:
    example = tuple(torch.rand(SIDE, SIDE) / SIDE for _ in range(3))
    with torch.no_grad():
        graph = torch.jit.trace(_TwoHalves().eval(), example)
    with torch.inference_mode():
        for _ in range(3):  # TorchScript profiles and optimises on the first calls: measure the steady state
            graph(*example)
    return graph


def _timed(call: Callable[[], object], spent: list[float]) -> Callable[[], None]:
    """``call``, appending the CPU seconds it took (on its thread) to ``spent``."""

    def run() -> None:
        start = time.thread_time()
        call()
        spent.append(time.thread_time() - start)

    return run


LATE = 0.45  # a hold that began past this share of the call cannot tell where the thread stops in it
ATTEMPTS = 5


def _share_done_while_the_gil_is_held(call: Callable[[], object], stall_s: float = 1.0) -> float:
    """The share of ``call``'s CPU time a thread running it gets through while this thread holds the GIL.

    The thread is let into the first fifth of the call (this thread sleeps, so the GIL is free; a fifth
    is judged by a run alone), then this thread spins, holding the GIL, until the thread's CPU time
    has not moved for ``stall_s`` (it waits for the GIL: in the call, or once it returns). With the
    switch interval raised, the GIL changes hands only when released. On a busy machine this thread
    may wake from its sleep after the thread passed the call's middle (CI: 83% done); such a run is
    repeated.
    """
    alone: list[float] = []
    solo = threading.Thread(target=_timed(call, alone))
    solo.start()
    solo.join()
    for _ in range(ATTEMPTS):
        began, done, spent = _hold_the_gil_early(call, 0.2 * alone[0], stall_s)
        if began < LATE * spent:
            return done / spent
    pytest.fail(f"in {ATTEMPTS} runs the GIL was taken only past {LATE:.0%} of the call: the machine is too busy")


def _hold_the_gil_early(call: Callable[[], object], let_in_s: float, stall_s: float) -> tuple[float, float, float]:
    """A thread runs ``call``; past ``let_in_s`` of its CPU this thread holds the GIL until it stalls.

    Returns the thread's CPU seconds when the hold began, when it stalled, and for the whole call.
    """
    spent: list[float] = []
    t = threading.Thread(target=_timed(call, spent))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        t.start()
        clock = time.pthread_getcpuclockid(t.ident)  # type: ignore[arg-type]  # started: it has an ident
        let_in = time.monotonic() + 30
        while time.clock_gettime(clock) < let_in_s and time.monotonic() < let_in:
            time.sleep(0.0005)
        began = done = time.clock_gettime(clock)
        since = time.perf_counter()
        while time.perf_counter() - since < stall_s:  # pure Python: holds the GIL
            now = time.clock_gettime(clock)
            if now != done:
                done, since = now, time.perf_counter()
    except OSError:  # the thread ended before the hold began (its CPU clock is gone): a late run
        began = done = math.inf
    finally:
        sys.setswitchinterval(old)
    t.join()
    return began, done, spent[0]


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    return tuple(torch.from_numpy(rng.random((SIDE, SIDE), dtype=np.float32) / SIDE) for _ in range(3))  # type: ignore[return-value]


def test_torch_takes_the_gil_mid_forward_to_drop_a_python_made_tensor(two_halves):
    """The upstream behaviour held_by_cpp works around (pytorch/pytorch#167564, torch 2.13).

    If this fails, the thread got through the forward without the GIL: torch no longer decrefs the
    Python wrapper there, and held_by_cpp (flts_streams/forecasting/graph.py) may be removable.
    """
    a, b, w = _inputs()

    def call() -> None:
        with torch.inference_mode():
            two_halves(a, b, w)

    share = _share_done_while_the_gil_is_held(call)
    assert share < 0.8, f"{share:.0%} of the forward ran while another thread held the GIL"


def test_held_by_cpp_lets_a_forward_run_through_while_the_gil_is_held(two_halves):
    a, b, w = _inputs()

    def call() -> None:
        held = held_by_cpp((a, b, w))
        with torch.inference_mode():
            two_halves(a, b, w)
        del held

    share = _share_done_while_the_gil_is_held(call)
    assert share >= 0.9, f"only {share:.0%} of the forward ran while another thread held the GIL"
    assert a._use_count() == 1  # the reference is given back with the list


@pytest.fixture(scope="module")
def frame():
    return prepare_frame(demo_frame(days=2, seed=1), required=FEATURES, impute=True)


class _Spy:
    """Stands in for a traced graph: records each tensor argument's C++ reference count, then calls it."""

    def __init__(self, graph: Callable[..., torch.Tensor]) -> None:
        self.graph = graph
        self.counts: list[int] = []

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        self.counts += [t._use_count() for t in args]
        return self.graph(*args)


@pytest.mark.parametrize("graph", ["shared", "private", "numpy path"])
def test_every_tensor_a_forward_passes_is_held_by_cpp_beside_its_python_wrapper(frame, graph):
    """A count of 1 is the wrapper's reference alone: torch would take the GIL mid-forward to drop the graph's."""
    calendar = ("minute_of_day", "day_of_year") if graph == "numpy path" else ("minute_of_day",)
    f = model(history_days=1, quantiles=(0.1, 0.9), time_features=calendar).forecaster
    if graph == "private":
        f.use_private_graph()
    items = [f.make_input(frame.tail(n)) for n in (800, 30)]
    want = f.predict_inputs(items)
    if graph == "numpy path":
        assert f._graph is None
        spy = f._run = _Spy(f._run)
    else:
        spy = f._graph._graph = _Spy(f._graph._graph)
    np.testing.assert_array_equal(f.predict_inputs(items), want)
    assert len(spy.counts) >= 3
    assert min(spy.counts) >= 2, spy.counts
