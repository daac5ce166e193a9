"""The Faust worker class of this service: faust.Worker without its terminal spinner.

Why: at a log level of WARN or above, ``faust.Worker.on_setup_root_logger`` attaches a spinner
handler and sets the **root logger to DEBUG** so that every record turns the spinner, whatever the
level asked for (faust/worker.py, ``_setup_spinner_handler``). The handlers still drop the records,
but every debug call of aiokafka, Faust and mode builds and dispatches one first: with ``-l warn``
~5% of the event loop's time in a claim burst went to records nobody prints (py-spy, `flts bench
claims`). Faust itself runs without the spinner below WARN; this worker never has one, so the root
logger keeps the level asked for. Pinned by tests/test_flts_streams/test_kafka/test_faust_worker.py.
"""

from __future__ import annotations

import logging

import faust


class FltsWorker(faust.Worker):
    """faust.Worker whose root logger keeps the level asked for (no spinner)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Drop the spinner before Faust would attach it and lower the root logger to DEBUG for it."""
        self.spinner = None
        super().on_setup_root_logger(logger, level)
