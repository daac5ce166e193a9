"""`flts bench claims`: a claim burst through the worker vs a raw aiokafka consume-produce loop on the same broker."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
import statistics
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import requests
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from flts_bench.common import replace_section, train_bench_model
from flts_bench.worker import Worker, rss_mb, service_topics
from flts_streams.forecasting.demo import demo_frame
from flts_streams.kafka.embedded_broker import ensure_topics, free_port, start_tansu
from flts_streams.streaming.publishing import ClaimPlan, publish_claims

log = logging.getLogger(__name__)
PARTITIONS = 4
RAW_IN, RAW_OUT = "bench-raw-in", "bench-raw-out"


@dataclass
class RssSampler:
    """Samples a process's RSS in a thread: before, peak during, after."""

    pid: int
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> RssSampler:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_mb(self.pid))
            time.sleep(0.5)

    def stop(self) -> list[float]:
        self._stop.set()
        return self.samples


def _producer(bootstrap: str) -> AIOKafkaProducer:
    # One record per batch, exactly as the worker must produce to Tansu (docs/ARCHITECTURE.md, "Known traps"):
    # a fair ceiling.
    return AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0)


async def _raw_loop(bootstrap: str, n: int, value: bytes) -> float:
    """Messages/s of consume -> produce -> commit over ``n`` claim-sized messages (the ceiling)."""
    producer = _producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(RAW_IN, value, key=f"id-{i % 20}".encode()) for i in range(n)]
        await asyncio.gather(*futures)
        consumer = AIOKafkaConsumer(
            RAW_IN,
            bootstrap_servers=bootstrap,
            group_id="bench-raw",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=1000,
        )
        await consumer.start()
        try:
            done, started = 0, time.perf_counter()
            while done < n:
                batch = await consumer.getmany(timeout_ms=1000)
                sends = [
                    await producer.send(RAW_OUT, r.value, key=r.key) for records in batch.values() for r in records
                ]
                await asyncio.gather(*sends)
                await consumer.commit()
                done += len(sends)
            return n / (time.perf_counter() - started)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


async def _account(bootstrap: str, tag: str, n: int, timeout: float) -> tuple[dict[str, float], int, float]:
    """Read results and dead letters until every claim of the burst is accounted for (or timeout)."""
    consumer = AIOKafkaConsumer(
        "inference-results",
        "flts-dead-letter",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    await consumer.start()
    latencies: dict[str, float] = {}
    dead, last = 0, time.time()
    deadline = time.monotonic() + timeout
    try:
        while len(latencies) + dead < n and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for r in records:
                    if tp.topic == "flts-dead-letter":
                        dead += tag.encode() in base64.b64decode(json.loads(r.value).get("value_b64", ""))
                        continue
                    msg = json.loads(r.value)
                    cid = msg["claim"]["claim_id"] or ""
                    if cid.startswith(tag):
                        latencies[cid] = msg["processed_at"] - msg["published_at"]
                        last = max(last, msg["processed_at"])
    finally:
        await consumer.stop()
    return latencies, dead, last


def _claim_counters(port: int) -> dict[str, float]:
    """The worker's own claim outcome counters (to tell a lost claim from a slow one)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("flts_claims_total{")
    }


def _pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else (values[0] if values else float("nan"))
    )


def run(out_dir: Path, n: int, identifiers: int, docs: Path) -> dict:
    """Raw ceiling, then the worker on the same broker with an ``n``-claim burst; writes BENCHMARKS.md."""
    var = out_dir / "var-claims"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    tracking, uri = train_bench_model(var)
    idents = [f"site-{i}" for i in range(identifiers)]
    objects = var / "objects" / "flts" / "claims"
    objects.mkdir(parents=True)
    for i, ident in enumerate(idents):
        demo_frame(days=1, seed=1000 + i).to_parquet(objects / f"{ident}.parquet", index=False)
    with ExitStack() as stack:
        broker = start_tansu("127.0.0.1", free_port(), var / "tansu.log")
        stack.callback(broker.stop)
        ensure_topics(broker.bootstrap, (*service_topics(), RAW_IN, RAW_OUT), PARTITIONS)
        sample_claim = json.dumps(
            {"identifier": "site-0", "bucket": "flts", "object_key": "claims/site-0.parquet", "claim_id": "raw-0"}
        ).encode()
        raw_rate = asyncio.run(_raw_loop(broker.bootstrap, n, sample_claim))
        log.info("raw ceiling %.0f msg/s", raw_rate)
        worker = Worker(
            var, broker.url, {"FLTS_MODEL__DEFAULT_URI": uri, "FLTS_MODEL__TRACKING_URI": tracking}, log_level="warn"
        ).start()
        stack.callback(worker.stop)
        worker.wait_ready(timeout=120)
        port = worker.port
        time.sleep(2)
        sampler = RssSampler(worker.pid).start()
        time.sleep(1.5)
        before = max(sampler.samples)
        tag = f"bench{int(time.time())}"
        plan = ClaimPlan({i: f"claims/{i}.parquet" for i in idents}, n, "flts")
        started = time.time()
        pub = publish_claims(broker.bootstrap, "inference-data", plan, tag, progress=False)
        latencies, dead, last = asyncio.run(_account(broker.bootstrap, tag, n, timeout=max(120.0, n / 20)))
        counters = _claim_counters(port)
        during = max(sampler.samples)
        time.sleep(5)
        after = sampler.stop()[-1]
    lat = sorted(latencies.values())
    worker_rate = len(lat) / max(1e-9, last - started)
    summary = {
        "claims": n,
        "identifiers": identifiers,
        "published": pub.sent,
        "publish_rate": round(pub.rate),
        "results": len(lat),
        "dead_letters": dead,
        "unaccounted": n - len(lat) - dead,
        "worker_claims_per_s": round(worker_rate, 1),
        "raw_ceiling_per_s": round(raw_rate, 1),
        "ratio_vs_raw": round(worker_rate / raw_rate, 3),
        "e2e_p50_s": round(_pct(lat, 50), 3),
        "e2e_p99_s": round(_pct(lat, 99), 3),
        "rss_mb": {"before": round(before), "peak": round(during), "after": round(after)},
        "rss_growth_mb": round(during - before),
        "worker_counters": counters,
        "missing_sample": sorted(set(f"{tag}-{i}" for i in range(n)) - set(latencies))[:10],
    }
    (out_dir / "bench-claims.json").write_text(json.dumps(summary, indent=2))
    _write_report(summary, docs)
    return summary


def _write_report(s: dict, docs: Path) -> None:
    ok = lambda flag: "met" if flag else "**missed**"  # noqa: E731
    lines = [
        "## Claims: `flts bench claims`",
        "",
        f"Command: `flts bench claims --count {s['claims']} --identifiers {s['identifiers']}` — embedded Tansu broker, "
        f"{PARTITIONS} partitions, one worker, file:// store; "
        "the raw ceiling is an aiokafka consume -> produce -> commit "
        "loop over the same broker and message count, measured in the same run (both produce one record per batch, "
        "the Tansu workaround).",
        "",
        "| measure | value |",
        "|---|---|",
        "| claims published / results / dead letters / unaccounted | "
        f"{s['published']} / {s['results']} / {s['dead_letters']} / {s['unaccounted']} |",
        f"| worker throughput (claims/s, first publish to last result) | {s['worker_claims_per_s']} |",
        f"| raw consume-and-produce ceiling (msg/s) | {s['raw_ceiling_per_s']} |",
        f"| ratio worker / raw | {s['ratio_vs_raw']} |",
        "| end-to-end latency p50 / p99 (s, publish to result; includes queueing behind the burst) | "
        f"{s['e2e_p50_s']} / {s['e2e_p99_s']} |",
        f"| worker RSS before / peak / after (MB) | {s['rss_mb']['before']} / {s['rss_mb']['peak']} / "
        f"{s['rss_mb']['after']} |",
        "",
        f"Targets: all accounted for — {ok(s['unaccounted'] == 0)}; "
        f"RSS growth under 300 MB ({s['rss_growth_mb']} MB) — "
        f"{ok(s['rss_growth_mb'] < 300)}; "
        f"throughput at least 10% of the raw ceiling — {ok(s['ratio_vs_raw'] >= 0.10)}.",
    ]
    docs.mkdir(parents=True, exist_ok=True)
    replace_section(docs / "BENCHMARKS.md", "## Claims: `flts bench claims`", "\n".join(lines))
