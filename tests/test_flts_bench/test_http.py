"""`flts bench http` bookkeeping: ratios within rounds, pooled tables, the report, the bare handler's size."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from flts_bench import http
from flts_bench.common import wait_http
from flts_bench.loadgen import LoadResult
from flts_streams.kafka.embedded_broker import free_port


def _result(conns: int, ok: int, latency_s: float, seconds: float = 1.0, rejected: int = 0) -> LoadResult:
    return LoadResult(conns, seconds, [latency_s] * ok, Counter({200: ok, **({429: rejected} if rejected else {})}))


def _round(worker: float, mlflow: float, bare: float) -> dict:
    return {
        name: {c: _result(c, int(rps * (1 if c == 64 else 0.5)), 0.01 * c) for c in http.LEVELS}
        for name, rps in ((http.WORKER, worker), (http.MLFLOW, mlflow), (http.BARE, bare))
    }


def test_ratios_are_taken_within_rounds_and_reported_as_median_and_range(tmp_path):
    rounds = [_round(1000, 100, 4000), _round(1500, 100, 3000), _round(800, 200, 4000)]
    overload = [
        (_result(64, 100, 0.05), _result(256, 30, 0.1, rejected=300)),
        (_result(64, 100, 0.04), _result(256, 30, 0.2, rejected=300)),
        (_result(64, 100, 0.05), _result(256, 30, 0.15, rejected=300)),
    ]
    health = _result(1, 50, 0.002)
    s = http._summary(
        rounds,
        health,
        _result(64, 900, 0.05),
        overload,
        6.0,
        3,
        1800,
        {"warm": 1, "after_overload": 1, "after_idle": 1},
    )
    bare = s["ratios"]["peak_throughput_vs_bare_peak"]
    assert bare["rounds"] == [0.25, 0.5, 0.2] and bare["median"] == 0.25 and (bare["min"], bare["max"]) == (0.2, 0.5)
    assert s["ratios"]["peak_throughput_vs_mlflow_peak"]["rounds"] == [10.0, 15.0, 4.0]
    assert s["overload"]["accepted_p99_vs_sustainable_p99"]["rounds"] == [2.0, 5.0, 3.0]
    assert s["overload"]["statuses"] == {"200": 90, "429": 900}
    assert s["overload"]["answered_rate_vs_sustainable_rate"]["rounds"] == [3.3, 3.3, 3.3]  # (30 + 300) / 100
    assert s["table"][http.WORKER][64]["rps"] == round((1000 + 1500 + 800) / 3, 1)  # pooled over the rounds' time

    docs = tmp_path / "docs"
    (docs / "BENCHMARKS.md").parent.mkdir()
    (docs / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\n## HTTP: `flts bench http`\nold\n\n## Claims: `flts bench claims`\nkept\n"
    )
    http.write_report(s, docs, tmp_path)
    text = (docs / "BENCHMARKS.md").read_text()
    assert "| worker peak / bare aiohttp peak | 0.25 (rounds 0.2-0.5) | >= 0.40 |" in text
    assert "the rate offered | 3.3x (rounds 3.3-3.3x) |" in text
    assert "old" not in text and "## Claims: `flts bench claims`\nkept" in text
    assert (docs / "img" / "bench-http.png").stat().st_size > 0


def test_the_bare_handler_is_sized_on_a_successful_answer():
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-m", "flts_bench.bare", str(port), "1833"])
    try:
        wait_http(f"http://127.0.0.1:{port}/ping", timeout=30)
        assert http.answer_size(f"http://127.0.0.1:{port}/predict", b"{}") == 1833
        with pytest.raises(RuntimeError, match="answered 404"):
            http.answer_size(f"http://127.0.0.1:{port}/nowhere", b"{}")
    finally:
        bare.terminate()
        bare.wait(10)
