"""The worker class: Faust's spinner trap, mode's idle second at exit, and the stop deadline (pinned and tested)."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import threading
from types import SimpleNamespace

import faust
import mode.worker
from faust.utils import terminal
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

from flts_streams.core.log_throttle import RepeatThrottle, UnreportedCounts
from flts_streams.core.settings import Settings
from flts_streams.kafka import faust_worker
from flts_streams.kafka.faust_worker import STOP_DEADLINE_EXIT, FltsWorker, arm_stop_deadline
from tests.test_flts_streams.helpers import source_statements


def _logger_after_setup(cls: type[faust.Worker], level: int, settings: Settings | None = None) -> logging.Logger:
    """A fresh root-like logger after ``cls`` configured it at ``level`` (as mode's Worker does)."""
    worker = cls.__new__(cls)  # only the spinner and the settings are read: no event loop
    worker.spinner = terminal.Spinner(file=io.StringIO())
    worker.app = SimpleNamespace(settings=settings or Settings())
    logger = logging.Logger("root-under-test", level)
    logger.addHandler(logging.StreamHandler(io.StringIO()))
    worker.on_setup_root_logger(logger, level)
    return logger


def _root_after_setup(cls: type[faust.Worker], level: int) -> int:
    """The level a fresh root-like logger has after ``cls`` configured it at ``level``."""
    return _logger_after_setup(cls, level).level


def test_faust_worker_still_sets_the_root_logger_to_debug_at_warn():
    """Upstream behaviour worked around; when this fails, flts_streams/kafka/faust_worker.py may go."""
    assert _root_after_setup(faust.Worker, logging.WARNING) == logging.DEBUG


def test_our_worker_keeps_the_level_asked_for():
    assert _root_after_setup(FltsWorker, logging.WARNING) == logging.WARNING
    assert _root_after_setup(FltsWorker, logging.INFO) == logging.INFO


def test_our_worker_throttles_the_broker_clients_repeats_on_every_root_handler():
    (handler,) = _logger_after_setup(FltsWorker, logging.INFO, Settings(log_repeat_s=7.5)).handlers
    (throttle,) = [f for f in handler.filters if isinstance(f, RepeatThrottle)]
    assert throttle.interval_s == 7.5
    # Its reporter runs: the counts an outage's end leaves are said without a next line of their kind.
    (reporter,) = [t for t in threading.enumerate() if isinstance(t, UnreportedCounts) and t.throttle is throttle]
    reporter.stop()
    assert not _logger_after_setup(FltsWorker, logging.INFO, Settings(log_repeat_s=0)).handlers[0].filters


def test_our_worker_turns_mlflows_progress_bars_off_unless_the_environment_says(monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    _logger_after_setup(FltsWorker, logging.INFO)
    assert not MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get()  # as MLflow reads it, at every download
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    _logger_after_setup(FltsWorker, logging.INFO)
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get()


def test_an_app_without_flts_settings_gets_the_environments():
    """The bench's bare Faust ceiling is a plain faust.App (tests/test_flts_bench/test_bare_faust.py runs it)."""
    settings = Settings(log_repeat_s=3)
    assert faust_worker.app_settings(SimpleNamespace(settings=settings)) is settings
    assert faust_worker.app_settings(faust.App("test-plain-app")) == Settings()


def test_the_app_and_the_bench_ceiling_run_our_worker_class():
    assert Settings().faust_defaults()["Worker"] == "flts_streams.kafka.faust_worker:FltsWorker"
    app = faust.App("test-worker-class", **Settings().faust_defaults())
    assert app.conf.Worker is FltsWorker


def _sentinel(worker_class: type[faust.Worker], tasks: int, unwind_s: float, monkeypatch) -> tuple[list, list, int]:
    """Run ``worker_class``'s exit sentinel after cancelling ``tasks`` tasks that take ``unwind_s`` to unwind.

    Returns the delays it slept, the timeouts it waited with, and how many tasks finished unwinding
    (recorded, not timed: the tests must not depend on a quiet machine).
    """
    sleeps: list[float] = []
    waits: list[float | None] = []
    real_sleep, real_wait = asyncio.sleep, asyncio.wait
    unwound = []

    async def sleep(delay: float, *args, **kwargs):
        sleeps.append(delay)
        return await real_sleep(0)

    async def wait(aws, *args, timeout=None, **kwargs):
        waits.append(timeout)
        return await real_wait(aws, *args, timeout=timeout, **kwargs)

    async def busy() -> None:
        try:
            await real_sleep(3600)
        finally:
            await real_sleep(unwind_s)  # cleanup that takes a while, as a stopping service's may
            unwound.append(1)

    async def main() -> None:
        for task in [asyncio.create_task(busy()) for _ in range(tasks)]:
            await real_sleep(0)
            task.cancel()
        monkeypatch.setattr(asyncio, "sleep", sleep)
        monkeypatch.setattr(asyncio, "wait", wait)
        try:
            await worker_class._sentinel_task(worker_class.__new__(worker_class))
        finally:
            monkeypatch.undo()

    asyncio.run(main())
    return sleeps, waits, len(unwound)


def test_modes_worker_still_idles_a_second_before_closing_its_loop(monkeypatch):
    """Upstream behaviour worked around: when this fails, FltsWorker._sentinel_task may go."""
    from mode.worker import Worker

    assert _sentinel(Worker, tasks=0, unwind_s=0, monkeypatch=monkeypatch)[0] == [1.0]


def test_our_worker_closes_its_loop_at_once_when_nothing_is_left_to_unwind(monkeypatch):
    sleeps, waits, _ = _sentinel(FltsWorker, tasks=0, unwind_s=0, monkeypatch=monkeypatch)
    assert waits == [] and set(sleeps) == {0}  # loop turns only


def test_our_worker_lets_cancelled_tasks_unwind_for_at_most_a_second(monkeypatch):
    sleeps, waits, unwound = _sentinel(FltsWorker, tasks=2, unwind_s=0.2, monkeypatch=monkeypatch)
    assert unwound == 2 and waits == [1.0] and set(sleeps) == {0}
    _, waits, unwound = _sentinel(FltsWorker, tasks=1, unwind_s=30, monkeypatch=monkeypatch)
    assert unwound == 0 and waits == [1.0]  # given up on after the second, as mode does


def test_mode_starts_the_stop_on_the_first_signal_only():
    # FltsWorker._schedule_shutdown arms its deadline when mode's starts the stop: on the first signal,
    # told by _signal_stop_time. If mode changes how it tells, this fails and ours must follow.
    assert source_statements(mode.worker.Worker._schedule_shutdown)[:2] == [
        "if not self._signal_stop_time:",
        "self._signal_stop_time = self.loop.time()",
    ]


def test_the_first_signal_arms_the_stop_deadline_once_with_the_setting(monkeypatch):
    armed: list[float] = []
    started: list[signal.Signals] = []
    monkeypatch.setattr(faust_worker, "arm_stop_deadline", armed.append)
    monkeypatch.setattr(
        mode.worker.Worker,
        "_schedule_shutdown",
        lambda self, signum: started.append(signum) or setattr(self, "_signal_stop_time", 1.0),
    )
    worker = FltsWorker.__new__(FltsWorker)
    worker._signal_stop_time = None
    worker.app = SimpleNamespace(settings=Settings(streaming={"stop_deadline_s": 12.5}))
    worker._schedule_shutdown(signal.SIGTERM)
    worker._schedule_shutdown(signal.SIGTERM)
    assert started == [signal.SIGTERM, signal.SIGTERM] and armed == [12.5]


def test_an_overdue_stop_logs_why_and_exits_with_its_own_status(caplog):
    exited = threading.Event()
    codes: list[int] = []

    def exit_process(code: int) -> None:
        codes.append(code)
        exited.set()

    with caplog.at_level(logging.ERROR, logger="flts_streams.kafka.faust_worker"):
        timer = arm_stop_deadline(0.01, exit_process)
        assert exited.wait(30), "the deadline never fired"
    assert timer.daemon  # never holds up an exit that happens first
    assert codes == [STOP_DEADLINE_EXIT]
    assert "without the final commit" in caplog.text and "processed again" in caplog.text


def test_a_deadline_that_is_not_reached_does_nothing():
    codes: list[int] = []
    timer = arm_stop_deadline(3600, codes.append)
    timer.cancel()
    timer.join(5)
    assert codes == []
