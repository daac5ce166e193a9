"""`flts bench scale`: one worker with 10,000 identifiers' cached state, 1,000 of them with a champion of their own.

Measures what a network of cells costs one worker: start-to-ready after a restart (broker and
RocksDB kept), RSS, the size of `latest_frames` on disk, /metrics series, and GET /predict/{id}
throughput for random identifiers against one identifier (alternated, same run).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pandas as pd
import requests

from flts_bench.common import account_claims, claim_counters, replace_section, train_bench_model
from flts_bench.loadgen import drive
from flts_bench.worker import Worker, rss_mb, service_topics
from flts_streams.forecasting.demo import demo_frame
from flts_streams.kafka.embedded_broker import ensure_topics, free_port, start_tansu
from flts_streams.streaming.publishing import ClaimPlan, publish_claims

log = logging.getLogger(__name__)
PARTITIONS = 4
ROWS = 720  # one day at 2 minutes per identifier's object: a window and a day of history for its state
HEADING = "## Scale: `flts bench scale`"


def synthetic_objects(root: Path, identifiers: list[str], source: pd.DataFrame, seed: int = 7) -> None:
    """One object per identifier: a day of ``source`` at a random offset, scaled by 0.1-10x (a cell of its own)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    volume = [c for c in ("down", "up", "rnti_count") if c in source.columns]
    stamps = pd.date_range("2026-01-08", periods=ROWS, freq="120s")  # every cell's day ends at the same time
    for ident in identifiers:
        start = int(rng.integers(0, len(source) - ROWS))
        part = source.iloc[start : start + ROWS].copy()
        part[volume] = part[volume].to_numpy() * float(np.exp(rng.uniform(np.log(0.1), np.log(10))))
        part.insert(0, "ts", stamps)
        part.to_parquet(root / f"{ident}.parquet", index=False)


def source_frame(data: Path | None) -> pd.DataFrame:
    """The measured columns of the real data when given (blank cells filled), else a week of the demo data."""
    frame = demo_frame(days=7, seed=11) if data is None else pd.read_csv(data).ffill().bfill()
    return frame.drop(columns=[frame.columns[0]])  # the time column: each cell gets its own stamps


def register_champions(tracking: str, model_uri: str, names: list[str]) -> float:
    """Register ``model_uri`` under each name with the champion alias; returns seconds taken."""
    from mlflow.tracking import MlflowClient

    from flts_streams.forecasting import packaging

    packaging.configure(tracking)
    client, started = MlflowClient(), time.monotonic()
    source = client.get_model_version_download_uri("flts-bench", "1")
    run_id = client.get_model_version("flts-bench", "1").run_id
    for name in names:
        client.create_registered_model(name)
        version = client.create_model_version(name, source, run_id=run_id).version
        client.set_registered_model_alias(name, "champion", version)
    return time.monotonic() - started


@dataclass
class Throughput:
    """GET /predict/{id} answers of one phase."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Answers 200 per second."""
        return self.statuses.get(200, 0) / self.seconds


async def _get_load(base: str, pick: list[str], concurrency: int, seconds: float, seed: int) -> Throughput:
    """``concurrency`` closed-loop clients, each GETting /predict/{id} for an id drawn from ``pick``."""
    rng, out = random.Random(seed), Throughput(seconds)
    stop_at = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            async with session.get(f"{base}/predict/{rng.choice(pick)}") as resp:
                await resp.read()
                out.statuses[resp.status] = out.statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    out.latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return out


def _first_requests(base: str, idents: list[str], concurrency: int) -> Throughput:
    """Each identifier asked once (its champion loads on this first request): the cold path's latencies."""
    queue = list(idents)

    async def run() -> Throughput:
        out = Throughput(0.0)
        started = time.perf_counter()

        async def client(session: aiohttp.ClientSession) -> None:
            while queue:
                ident, t = queue.pop(), time.perf_counter()
                async with session.get(f"{base}/predict/{ident}") as resp:
                    body = await resp.read()
                    out.statuses[resp.status] = out.statuses.get(resp.status, 0) + 1
                    if resp.status == 200 and json.loads(body)["model_source"] == "own":
                        out.latencies.append(time.perf_counter() - t)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            await asyncio.gather(*(client(session) for _ in range(concurrency)))
        out.seconds = time.perf_counter() - started
        return out

    return drive(run())


def metric_series(url: str) -> int:
    """Series /metrics exposes (sample lines)."""
    text = requests.get(url + "/metrics", timeout=30).text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def table_bytes(var: Path, table: str) -> int:
    """Bytes on disk of a table's RocksDB stores under the worker's data directory."""
    return sum(f.stat().st_size for d in var.rglob(f"*{table}*") if d.is_dir() for f in d.rglob("*") if f.is_file())


def _ms(values: list[float], q: float) -> float:
    return round(float(np.quantile(values, q)) * 1000, 1) if values else float("nan")


def run(
    out_dir: Path,
    identifiers: int,
    champions: int,
    docs: Path,
    *,
    seconds: float = 10.0,
    rounds: int = 3,
    concurrency: int = 16,
    data: Path | None = None,
) -> dict:
    """The whole scale benchmark; writes its section of BENCHMARKS.md and returns the figures."""
    var = out_dir / "var-scale"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    tracking, uri = train_bench_model(var)
    idents = [f"cell-{i:05d}" for i in range(identifiers)]
    owners = idents[:champions]
    register_s = register_champions(tracking, uri, [f"flts-{i}" for i in owners])
    log.info("registered %d champions in %.0fs", len(owners), register_s)
    synthetic_objects(var / "objects" / "flts" / "cells", idents, source_frame(data))
    env = {"FLTS_MODEL__DEFAULT_URI": uri, "FLTS_MODEL__TRACKING_URI": tracking}
    with ExitStack() as stack:
        broker = start_tansu("127.0.0.1", free_port(), var / "tansu.log")
        stack.callback(broker.stop)
        ensure_topics(broker.bootstrap, service_topics(), PARTITIONS)
        worker = Worker(var, broker.url, env, log_level="warn")
        stack.callback(worker.stop)
        first_ready = worker.start().wait_ready(timeout=300)
        tag = f"scale{int(time.time())}"
        plan = ClaimPlan({i: f"cells/{i}.parquet" for i in idents}, identifiers, "flts")
        started = time.time()
        publish_claims(broker.bootstrap, "inference-data", plan, tag, progress=False)
        latencies, dead, last = asyncio.run(account_claims(broker.bootstrap, tag, identifiers, timeout=1200))
        claims = {
            "results": len(latencies),
            "dead_letters": dead,
            "per_s": round(len(latencies) / max(1e-9, last - started), 1),
            "counters": claim_counters(worker.port),
        }
        worker.stop()
        frames_mb = table_bytes(var, "latest_frames") / 2**20
        ready_s = worker.start().wait_ready(timeout=300)
        rss_ready = rss_mb(worker.pid)
        series_ready = metric_series(worker.url)
        cold = _first_requests(worker.url, owners, concurrency)
        one, anyone = [], []
        for r in range(rounds):  # alternated: the machine's drift falls on both
            one.append(drive(_get_load(worker.url, [owners[0]], concurrency, seconds, r)))
            anyone.append(drive(_get_load(worker.url, idents, concurrency, seconds, r)))
        rss_after = rss_mb(worker.pid)
        series_after = metric_series(worker.url)
    ratios = [a.rate / o.rate for a, o in zip(anyone, one)]
    summary = {
        "identifiers": identifiers,
        "champions": champions,
        "register_champions_s": round(register_s),
        "claims": claims,
        "first_start_ready_s": round(first_ready, 1),
        "restart_ready_s": round(ready_s, 1),
        "rss_ready_mb": round(rss_ready),
        "rss_after_mb": round(rss_after),
        "latest_frames_mb": round(frames_mb, 1),
        "metrics_series_ready": series_ready,
        "metrics_series_after": series_after,
        "first_request_own_model": {
            "answered_own": len(cold.latencies),
            "statuses": cold.statuses,
            "p50_ms": _ms(cold.latencies, 0.5),
            "p99_ms": _ms(cold.latencies, 0.99),
            "seconds": round(cold.seconds, 1),
        },
        "one_identifier_rps": [round(o.rate, 1) for o in one],
        "random_identifier_rps": [round(a.rate, 1) for a in anyone],
        "random_statuses": [a.statuses for a in anyone],
        "ratio_random_vs_one": [round(x, 3) for x in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
        "p99_ms_one_random": [
            _ms(sum((o.latencies for o in one), []), 0.99),
            _ms(sum((a.latencies for a in anyone), []), 0.99),
        ],
        "concurrency": concurrency,
        "data": "real (--data)" if data else "demo",
    }
    (out_dir / "bench-scale.json").write_text(json.dumps(summary, indent=2, default=str))
    _write_report(summary, docs)
    return summary


def _write_report(s: dict, docs: Path) -> None:
    ok = lambda flag: "met" if flag else "**missed**"  # noqa: E731
    cold = s["first_request_own_model"]
    lines = [
        HEADING,
        "",
        f"Command: `flts bench scale --identifiers {s['identifiers']} --champions {s['champions']}` "
        f"({s['data']} data) — embedded Tansu, {PARTITIONS} partitions, one worker, file:// store, "
        "MLflow on sqlite. Each identifier gets one claim with an object of its own (a day of the source data "
        "at a random offset, its traffic scaled 0.1-10x); the first "
        f"{s['champions']} get a registered champion of their own. The worker is then restarted with the broker "
        f"and its RocksDB kept. Throughput: {s['concurrency']} closed-loop connections of GET /predict/{{id}}, "
        "one identifier and random identifiers alternated.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| restart to ready (s) | {s['restart_ready_s']} | < 30: {ok(s['restart_ready_s'] < 30)} |",
        f"| RSS at ready / after every champion was used (MB) | {s['rss_ready_mb']} / {s['rss_after_mb']} | "
        f"< 1,536: {ok(max(s['rss_ready_mb'], s['rss_after_mb']) < 1536)} |",
        f"| random / one identifier throughput (median of {len(s['ratio_random_vs_one'])} pairs) | "
        f"{s['ratio_median']} ({', '.join(map(str, s['ratio_random_vs_one']))}) | "
        f">= 0.8: {ok(s['ratio_median'] >= 0.8)} |",
        f"| /metrics series at ready / after | {s['metrics_series_ready']} / {s['metrics_series_after']} | "
        f"< 2,000: {ok(max(s['metrics_series_ready'], s['metrics_series_after']) < 2000)} |",
        f"| `latest_frames` on disk (MB) | {s['latest_frames_mb']} | |",
        f"| one identifier / random identifiers (req/s) | {', '.join(map(str, s['one_identifier_rps']))} / "
        f"{', '.join(map(str, s['random_identifier_rps']))} | |",
        f"| p99 one / random (ms) | {s['p99_ms_one_random'][0]} / {s['p99_ms_one_random'][1]} | |",
        f"| first request of each champion identifier (loads its model): p50 / p99 (ms), all {cold['answered_own']} "
        f"by their own model | {cold['p50_ms']} / {cold['p99_ms']} ({cold['seconds']} s for all) | |",
        f"| claims to fill the state: results / dead letters, claims/s | {s['claims']['results']} / "
        f"{s['claims']['dead_letters']}, {s['claims']['per_s']} | |",
        f"| first start to ready (s); registering the champions (s) | {s['first_start_ready_s']}; "
        f"{s['register_champions_s']} | |",
    ]
    docs.mkdir(parents=True, exist_ok=True)
    replace_section(docs / "BENCHMARKS.md", HEADING, "\n".join(lines))
