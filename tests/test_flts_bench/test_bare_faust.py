"""The claims benchmark's ceiling (flts_bench/bare_faust.py) runs and stops under the service's worker class."""

from __future__ import annotations

import signal

import pytest

from flts_bench.bare_faust import BARE_IN, BARE_OUT
from flts_streams.kafka.embedded_broker import ensure_topics
from tests.integration.harness import Worker, start_broker

pytestmark = pytest.mark.integration


def test_the_bare_faust_app_starts_and_stops_cleanly_under_our_worker_class(tmp_path):
    # Its app has no flts settings: FltsWorker takes the environment's (kafka/faust_worker.py app_settings);
    # reading the app's failed at start, and nothing but `flts bench claims` runs this app.
    broker = start_broker(tmp_path / "broker")
    ensure_topics(broker.bootstrap, [BARE_IN, BARE_OUT], 1)
    app = Worker(tmp_path / "bare", broker.url, app="flts_bench.bare_faust", log_level="warn")
    try:
        app.start().wait_ready(timeout=120)
        status = app.stop(signal.SIGTERM, timeout=30)
        log = app.log_path.read_text(errors="replace") if app.log_path else ""
        assert status == 0, f"exit status {status}:\n{log[-3000:]}"
        assert "Traceback" not in log, log[-3000:]
    finally:
        app.stop(signal.SIGKILL)
        broker.stop()
