"""The README's first command: `flts dev` starts broker + worker, serves, and stops everything."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from flts_streams.broker import free_port
from tests.integration.harness import poll

pytestmark = pytest.mark.integration


def test_flts_dev_serves_within_a_minute_and_stops_cleanly(tmp_path):
    kafka, web = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLTS_")}
    env.update({"FLTS_BROKER_URL": f"kafka://127.0.0.1:{kafka}", "FLTS_PATHS__VAR_DIR": str(tmp_path / "var")})
    flts = str(Path(sys.executable).with_name("flts"))
    started = time.monotonic()
    proc = subprocess.Popen([flts, "dev", "--web-port", str(web)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        poll(lambda: _ok(f"http://127.0.0.1:{web}/healthz"), timeout=60)
        assert time.monotonic() - started < 60
        metrics = requests.get(f"http://127.0.0.1:{web}/metrics", timeout=5)
        assert metrics.status_code == 200 and "# TYPE flts_http_requests_total counter" in metrics.text
        poll(lambda: _ok(f"http://127.0.0.1:{web}/readyz"), timeout=60)  # demo model loaded, tables recovered
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("tansu" in c.name() for c in children) and any("faust" in " ".join(c.cmdline()) for c in children)
        assert (tmp_path / "var" / "mlflow.db").exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(45) == 0
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert f"curl http://127.0.0.1:{web}/healthz" in out


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
