"""The Faust worker class of this service: faust.Worker without its terminal spinner or its idle second at exit.

Why: at a log level of WARN or above, ``faust.Worker.on_setup_root_logger`` attaches a spinner
handler and sets the **root logger to DEBUG** so that every record turns the spinner, whatever the
level asked for (faust/worker.py, ``_setup_spinner_handler``). The handlers still drop the records,
but every debug call of aiokafka, Faust and mode builds and dispatches one first: with ``-l warn``
~5% of the event loop's time in a claim burst went to records nobody prints (py-spy, `flts bench
claims`). Faust itself runs without the spinner below WARN; this worker never has one, so the root
logger keeps the level asked for.

At exit, mode's worker cancels the tasks still running and then runs the loop one more second
(``Worker._sentinel_task``, mode/worker.py) so they can unwind, however few there are: every stop
took a second longer than it needed (1.3 s from SIGTERM to exit, one of them that sleep). Ours
waits for those tasks up to that second and no longer.

A stop that cannot finish ends anyway (``arm_stop_deadline``): Faust's stop commits what was
processed, and flushes the producer before it commits, so that no offset is committed before its
results are out. With the broker unreachable that flush waits on ``producer_request_timeout``
(1,200 s), and a stopped worker hung until killed (still running 90 s after SIGTERM, with a claim
burst in process). After ``FLTS_STREAMING__STOP_DEADLINE_S`` it exits without committing; the claims
since the last commit are processed again by their next owner, as after a SIGKILL.
All pinned by tests/test_flts_streams/test_kafka/test_faust_worker.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Protocol, cast

import faust

from flts_streams.core.log_throttle import throttle_repeats
from flts_streams.core.settings import Settings, set_worker_library_env

log = logging.getLogger(__name__)
UNWIND_S = 1.0  # how long tasks cancelled at exit may take to finish (mode's sentinel sleeps this long in any case)
STOP_DEADLINE_EXIT = 75  # the exit status of a stop cut short (EX_TEMPFAIL: the broker, not the worker, failed)


class _HasSettings(Protocol):
    settings: Settings


def app_settings(app: object) -> Settings:
    """The app's settings; the environment's for an app without them (the bench's bare Faust ceiling)."""
    return cast(_HasSettings, app).settings if hasattr(app, "settings") else Settings()


class FltsWorker(faust.Worker):
    """faust.Worker: the root logger keeps the level asked for, the exit idles no second, the stop has a deadline.

    It also throttles aiokafka's repeated log lines (core/log_throttle.py): an outage logged thousands a minute;
    and turns off MLflow's progress bars (settings.WORKER_LIBRARY_ENV): each model load drew WARNING lines.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """No spinner (Faust would attach it); the broker client's repeats throttled; no progress bars."""
        self.spinner = None
        super().on_setup_root_logger(logger, level)
        throttle_repeats(app_settings(self.app).log_repeat_s, logger.handlers)
        set_worker_library_env()  # before any model loads: mode is about to log stderr at WARNING

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        """mode's: the first signal starts the stop; that first one also arms the stop deadline."""
        first = not self._signal_stop_time
        super()._schedule_shutdown(signum)
        if first:
            arm_stop_deadline(app_settings(self.app).streaming.stop_deadline_s)

    async def _sentinel_task(self) -> None:
        """Let the tasks cancelled at exit finish (at most UNWIND_S), then a few loop turns for their callbacks."""
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=UNWIND_S)
        for _ in range(3):  # callbacks the last of them scheduled (call_soon) run before the loop closes
            await asyncio.sleep(0)


def arm_stop_deadline(seconds: float, exit_process: Callable[[int], object] = os._exit) -> threading.Timer:
    """End the process ``seconds`` from now with STOP_DEADLINE_EXIT, unless it has exited by then.

    A daemon thread's timer: it fires even if the event loop is blocked, and never holds up an exit.
    """
    timer = threading.Timer(seconds, _stop_overdue, args=(seconds, exit_process))
    timer.daemon = True
    timer.name = "flts-stop-deadline"
    timer.start()
    return timer


def _stop_overdue(seconds: float, exit_process: Callable[[int], object]) -> None:
    log.error(
        "stop deadline passed: exiting without the final commit (a broker outage is the usual cause: Faust flushes "
        "results before it commits); claims since the last commit will be processed again by their next owner "
        "seconds=%.0f setting=FLTS_STREAMING__STOP_DEADLINE_S exit_status=%d",
        seconds,
        STOP_DEADLINE_EXIT,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    exit_process(STOP_DEADLINE_EXIT)
