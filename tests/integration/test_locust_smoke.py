"""Locust smoke run (tens of seconds) against the real worker: zero failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import claim, poll, produce, put_object

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_locust_smoke_has_no_failures(worker, broker, tmp_path):
    put_object(worker.var_dir / "objects", "claims/locust.parquet", demo_frame(days=1, seed=31))
    produce(broker.bootstrap, "inference-data", [(b"locust", claim("locust", "claims/locust.parquet"), None)])
    poll(lambda: requests.get(f"{worker.url}/frames/locust", timeout=5).status_code == 200)
    env = dict(os.environ, FLTS_LOAD_CACHED_IDENTIFIER="locust")
    out = tmp_path / "smoke"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.run",
            "--host",
            worker.url,
            "--users",
            "8",
            "--run-time",
            "15s",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = json.loads((tmp_path / "smoke_summary.json").read_text())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert summary["failures"] == 0 and summary["requests"] > 100
    assert summary["by_name"]["POST /predict"]["requests"] > 50
