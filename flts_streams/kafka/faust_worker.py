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
Both pinned by tests/test_flts_streams/test_kafka/test_faust_worker.py.
"""

from __future__ import annotations

import asyncio
import logging

import faust

UNWIND_S = 1.0  # how long tasks cancelled at exit may take to finish (mode's sentinel sleeps this long in any case)


class FltsWorker(faust.Worker):
    """faust.Worker whose root logger keeps the level asked for (no spinner)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Drop the spinner before Faust would attach it and lower the root logger to DEBUG for it."""
        self.spinner = None
        super().on_setup_root_logger(logger, level)

    async def _sentinel_task(self) -> None:
        """Let the tasks cancelled at exit finish (at most UNWIND_S), then a few loop turns for their callbacks."""
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others, timeout=UNWIND_S)
        for _ in range(3):  # callbacks the last of them scheduled (call_soon) run before the loop closes
            await asyncio.sleep(0)
