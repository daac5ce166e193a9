"""The worker class: Faust's spinner trap (root logger set to DEBUG at -l warn), pinned and avoided."""

from __future__ import annotations

import asyncio
import io
import logging
import time

import faust
from faust.utils import terminal

from flts_streams.core.settings import Settings
from flts_streams.kafka.faust_worker import FltsWorker


def _root_after_setup(cls: type[faust.Worker], level: int) -> int:
    """The level a fresh root-like logger has after ``cls`` configured it at ``level`` (as mode's Worker does)."""
    worker = cls.__new__(cls)  # only the spinner is read: no app, no event loop
    worker.spinner = terminal.Spinner(file=io.StringIO())
    logger = logging.Logger("root-under-test", level)
    logger.addHandler(logging.StreamHandler(io.StringIO()))
    worker.on_setup_root_logger(logger, level)
    return logger.level


def test_faust_worker_still_sets_the_root_logger_to_debug_at_warn():
    """Upstream behaviour worked around; when this fails, flts_streams/kafka/faust_worker.py may go."""
    assert _root_after_setup(faust.Worker, logging.WARNING) == logging.DEBUG


def test_our_worker_keeps_the_level_asked_for():
    assert _root_after_setup(FltsWorker, logging.WARNING) == logging.WARNING
    assert _root_after_setup(FltsWorker, logging.INFO) == logging.INFO


def test_the_app_and_the_bench_ceiling_run_our_worker_class():
    assert Settings().faust_defaults()["Worker"] == "flts_streams.kafka.faust_worker:FltsWorker"
    app = faust.App("test-worker-class", **Settings().faust_defaults())
    assert app.conf.Worker is FltsWorker


def test_modes_worker_still_idles_a_second_before_closing_its_loop():
    """Upstream behaviour worked around: when this fails, FltsWorker._sentinel_task may go."""
    import inspect

    from mode.worker import Worker

    assert "await asyncio.sleep(1.0)" in inspect.getsource(Worker._sentinel_task)


def _sentinel_seconds(tasks: int, unwind_s: float) -> tuple[float, int]:
    """Run our sentinel after cancelling ``tasks`` tasks that take ``unwind_s`` to unwind: (seconds, tasks unwound)."""
    unwound = []

    async def busy() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(unwind_s)  # cleanup that takes a while, as a stopping service's may
            unwound.append(1)

    async def main() -> float:
        for task in [asyncio.create_task(busy()) for _ in range(tasks)]:
            await asyncio.sleep(0)
            task.cancel()
        started = time.monotonic()
        await FltsWorker._sentinel_task(FltsWorker.__new__(FltsWorker))
        return time.monotonic() - started

    return asyncio.run(main()), len(unwound)


def test_our_worker_closes_its_loop_once_the_cancelled_tasks_are_done():
    seconds, unwound = _sentinel_seconds(tasks=0, unwind_s=0)
    assert seconds < 0.5  # mode's sleeps 1.0 s here
    seconds, unwound = _sentinel_seconds(tasks=2, unwind_s=0.3)
    assert unwound == 2 and seconds >= 0.25  # waited for both to finish unwinding


def test_our_worker_waits_at_most_a_second_for_tasks_that_do_not_finish():
    seconds, unwound = _sentinel_seconds(tasks=1, unwind_s=30)
    assert unwound == 0 and 0.9 <= seconds < 10
