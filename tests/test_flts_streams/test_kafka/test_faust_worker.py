"""The worker class: Faust's spinner trap (root logger set to DEBUG at -l warn), pinned and avoided."""

from __future__ import annotations

import io
import logging

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
