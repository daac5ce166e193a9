"""The claims benchmark's summary and report: pure logic over measured bursts (the runs are `flts bench claims`)."""

from __future__ import annotations

import os

from flts_bench.claims import Burst, _profile_summary, _write_report
from flts_bench.worker import cpu_s


def _bursts() -> tuple[Burst, Burst]:
    bare = Burst(1000, 0, 1.0, {"before": 100.0, "peak": 110.0}, cpu_s=0.6)
    worker = Burst(990, 10, 4.0, {"before": 400.0, "peak": 650.0, "after": 640.0}, [0.5, 1.0, 2.0], cpu_s=3.96)
    return bare, worker


def test_the_summary_gives_ratios_and_cpu_per_claim():
    bare, worker = _bursts()
    summary = _profile_summary(1000, 3000.0, bare, worker)
    assert summary["worker_claims_per_s"] == 247.5 and summary["bare_faust_per_s"] == 1000.0
    assert summary["ratio_vs_bare_faust"] == 0.247 and summary["unaccounted"] == 0  # 0.2475 is stored just below it
    assert summary["worker_cpu_cores"] == 0.99  # 3.96 CPU seconds over 4 s
    assert summary["worker_cpu_ms_per_claim"] == 4.0 and summary["bare_cpu_ms_per_claim"] == 0.6
    assert summary["rss_growth_mb"] == 250


def test_the_report_states_each_goal_and_the_cpu_rows(tmp_path):
    bare, worker = _bursts()
    summary = {
        "claims": 1000,
        "identifiers": 20,
        "object_rows": 60,
        "profiles": {"embedded": _profile_summary(1000, 3000.0, bare, worker)},
    }
    _write_report(summary, tmp_path)
    text = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| worker CPU over the burst (cores, all threads) | 0.99 |" in text
    assert "| CPU per claim, worker / bare Faust (ms) | 4.0 / 0.6 |" in text
    assert "embedded: 0 lost — **missed**, >= 0.40 of bare Faust — **missed**, RSS growth < 300 MB — met" in text


def test_cpu_seconds_grow_with_work():
    before = cpu_s(os.getpid())
    sum(i * i for i in range(2_000_000))
    assert cpu_s(os.getpid()) > before  # ~0.1 s of work: ten clock ticks at least
