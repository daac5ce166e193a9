"""`flts bench claims`: a claim burst through the worker against a bare Faust app on the same broker (the ceiling)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import statistics
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from flts_bench.bare_faust import BARE_IN, BARE_OUT, RESULT_BYTES
from flts_bench.common import account_claims, claim_counters, replace_section, train_bench_model
from flts_bench.worker import Worker, cpu_s, rss_mb, service_topics
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


def _producer(bootstrap: str, batching: bool) -> AIOKafkaProducer:
    # The embedded profile: one record per batch, exactly as the worker must produce to Tansu
    # (docs/ARCHITECTURE.md, "Known traps"); a fair ceiling. Batching: aiokafka's defaults.
    if batching:
        return AIOKafkaProducer(bootstrap_servers=bootstrap)
    return AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0)


async def _raw_loop(bootstrap: str, n: int, value: bytes, batching: bool = False) -> float:
    """Messages/s of consume -> produce -> commit over ``n`` claim-sized messages (context for the ceiling)."""
    producer = _producer(bootstrap, batching)
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


def _pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else (values[0] if values else float("nan"))
    )


@dataclass
class Burst:
    """One burst through one consumer: results counted, first publish to last result."""

    results: int
    dead_letters: int
    seconds: float
    rss: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)
    result_bytes: float = 0.0
    cpu_s: float = 0.0  # the consumer's CPU seconds over the burst (all threads)

    @property
    def rate(self) -> float:
        """Results per second."""
        return self.results / self.seconds if self.seconds else 0.0


def claim_objects(root: Path, idents: list[str], per_ident: int, rows: int) -> dict[str, list[str]]:
    """Distinct objects, as in production: each identifier's k-th claim carries its next ``rows // 2`` rows
    (and the ``rows // 2`` before them), from a demo series of its own scaled 0.1-10x. Keys under ``root``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    step = max(1, rows // 2)
    rng = np.random.default_rng(5)
    base = demo_frame(days=max(2, (per_ident * step + rows) // 720 + 1), seed=21, gaps=0, blanks=0)
    stamps = base.pop(base.columns[0]).to_numpy()
    keys: dict[str, list[str]] = {}
    for ident in idents:
        factor, shift = float(np.exp(rng.uniform(np.log(0.1), np.log(10)))), int(rng.integers(0, 720))
        values = base.to_numpy() * factor
        (root / ident).mkdir(parents=True, exist_ok=True)
        keys[ident] = []
        for k in range(per_ident):
            lo = shift % step + k * step
            part = {"ts": stamps[lo : lo + rows]} | {c: values[lo : lo + rows, j] for j, c in enumerate(base.columns)}
            pq.write_table(pa.table(part), root / ident / f"{k:05d}.parquet")
            keys[ident].append(f"claims/{ident}/{k:05d}.parquet")
    return keys


def _results_of(bootstrap: str, topic: str, tag: str, n: int, started: float, timeout: float) -> Burst:
    """Count the bare app's results of this burst (their record timestamps: when each was produced)."""

    async def count() -> Burst:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        seen: set[str] = set()
        last, size = started, 0
        deadline = time.monotonic() + timeout
        try:
            while len(seen) < n and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                    for r in records:
                        claim_id = json.loads(r.value[:-RESULT_BYTES]).get("claim_id") or ""
                        if claim_id.startswith(tag):
                            seen.add(claim_id)
                            last, size = max(last, r.timestamp / 1000), size + len(r.value)
        finally:
            await consumer.stop()
        return Burst(len(seen), 0, last - started, result_bytes=size / max(1, len(seen)))

    return asyncio.run(count())


def bare_ceiling(broker_url: str, bootstrap: str, var: Path, plan: ClaimPlan, env: dict[str, str]) -> Burst:
    """The bare Faust app on the same broker and settings: the burst in, one result per claim out."""
    app = Worker(var / "bare", broker_url, env, log_level="warn", app="flts_bench.bare_faust").start()
    try:
        app.wait_ready(timeout=120)
        warm = f"warm{int(time.time())}"
        publish_claims(bootstrap, BARE_IN, ClaimPlan(dict(list(plan.objects.items())[:1]), 1, plan.bucket), warm, False)
        if _results_of(bootstrap, BARE_OUT, warm, 1, time.time(), 120).results != 1:
            raise RuntimeError(f"the bare Faust app answered nothing:\n{app.log_tail()}")
        sampler = RssSampler(app.pid).start()
        time.sleep(1.0)
        before, tag, started, cpu = max(sampler.samples), f"bare{int(time.time())}", time.time(), cpu_s(app.pid)
        publish_claims(bootstrap, BARE_IN, plan, tag, progress=False)
        burst = _results_of(bootstrap, BARE_OUT, tag, plan.count, started, max(120.0, plan.count / 20))
        burst.cpu_s = cpu_s(app.pid) - cpu
        burst.rss = {"before": before, "peak": max(sampler.stop())}
        return burst
    finally:
        app.stop()


def worker_burst(broker_url: str, bootstrap: str, var: Path, plan: ClaimPlan, env: dict[str, str]) -> Burst:
    """The flts worker on the same broker: the burst in, every claim accounted for (result or dead letter)."""
    worker = Worker(var, broker_url, env, log_level="warn").start()
    try:
        worker.wait_ready(timeout=120)
        time.sleep(2)
        sampler = RssSampler(worker.pid).start()
        time.sleep(1.5)
        before, tag, started, cpu = max(sampler.samples), f"bench{int(time.time())}", time.time(), cpu_s(worker.pid)
        publish_claims(bootstrap, "inference-data", plan, tag, progress=False)
        latencies, dead, last = asyncio.run(
            account_claims(bootstrap, tag, plan.count, timeout=max(120.0, plan.count / 20))
        )
        used = cpu_s(worker.pid) - cpu
        counters = claim_counters(worker.port)
        peak = max(sampler.samples)
        time.sleep(5)
        after = sampler.stop()[-1]
    finally:
        worker.stop()
    return Burst(
        len(latencies),
        dead,
        last - started,
        {"before": before, "peak": peak, "after": after},
        sorted(latencies.values()),
        counters,
        cpu_s=used,
    )


PROFILES = {
    "embedded": {},  # one record per produced batch: Tansu's exact end offsets, which recovery needs
    "batching": {"FLTS_EMBEDDED__SINGLE_RECORD_BATCHES": "false"},  # a throughput profile, benchmarks only
}


def run(
    out_dir: Path,
    n: int,
    identifiers: int,
    docs: Path,
    *,
    profiles: tuple[str, ...] = ("embedded", "batching"),
    rows: int = 60,
) -> dict:
    """Per profile, on a fresh broker: the raw and bare-Faust ceilings, then the worker; writes BENCHMARKS.md."""
    var = out_dir / "var-claims"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    tracking, uri = train_bench_model(var)
    idents = [f"cell-{i:05d}" for i in range(identifiers)]
    started = time.monotonic()
    objects = claim_objects(var / "objects" / "flts" / "claims", idents, -(-n // identifiers), rows)
    log.info("wrote %d objects in %.0fs", n, time.monotonic() - started)
    plan = ClaimPlan(objects, n, "flts")  # type: ignore[arg-type]  # dict of lists: successive claims' objects
    summary: dict = {"claims": n, "identifiers": identifiers, "object_rows": rows, "profiles": {}}
    for name in profiles:
        env = {
            "FLTS_MODEL__DEFAULT_URI": uri,
            "FLTS_MODEL__TRACKING_URI": tracking,
            "FLTS_STORAGE__URL": (var / "objects").resolve().as_uri(),  # one copy of the objects for both profiles
        } | PROFILES[name]
        with ExitStack() as stack:
            broker = start_tansu("127.0.0.1", free_port(), var / f"tansu-{name}.log")
            stack.callback(broker.stop)
            ensure_topics(broker.bootstrap, (*service_topics(), RAW_IN, RAW_OUT, BARE_IN, BARE_OUT), PARTITIONS)
            sample = json.dumps({"identifier": idents[0], "bucket": "flts", "object_key": objects[idents[0]][0]})
            raw = asyncio.run(_raw_loop(broker.bootstrap, n, sample.encode(), batching=name == "batching"))
            bare = bare_ceiling(broker.url, broker.bootstrap, var / name, plan, env)
            log.info("profile=%s raw=%.0f/s bare faust=%.0f/s", name, raw, bare.rate)
            worker = worker_burst(broker.url, broker.bootstrap, var / name, plan, env)
        summary["profiles"][name] = _profile_summary(n, raw, bare, worker)
    (out_dir / "bench-claims.json").write_text(json.dumps(summary, indent=2))
    _write_report(summary, docs)
    return summary


def _profile_summary(n: int, raw: float, bare: Burst, worker: Burst) -> dict:
    lat = worker.latencies
    return {
        "results": worker.results,
        "dead_letters": worker.dead_letters,
        "unaccounted": n - worker.results - worker.dead_letters,
        "worker_claims_per_s": round(worker.rate, 1),
        "bare_faust_per_s": round(bare.rate, 1),
        "bare_faust_results": bare.results,
        "bare_result_bytes": round(bare.result_bytes),
        "raw_aiokafka_per_s": round(raw, 1),
        "ratio_vs_bare_faust": round(worker.rate / bare.rate, 3) if bare.rate else None,
        "ratio_vs_raw": round(worker.rate / raw, 3),
        "e2e_p50_s": round(_pct(lat, 50), 3),
        "e2e_p99_s": round(_pct(lat, 99), 3),
        "rss_mb": {k: round(v) for k, v in worker.rss.items()},
        "rss_growth_mb": round(worker.rss["peak"] - worker.rss["before"]),
        "bare_rss_mb": {k: round(v) for k, v in bare.rss.items()},
        # CPU: steadier than the ratio on a shared machine (the bare app's rate moved 2x between runs)
        "worker_cpu_cores": round(worker.cpu_s / worker.seconds, 2) if worker.seconds else None,
        "worker_cpu_ms_per_claim": round(1000 * worker.cpu_s / worker.results, 3) if worker.results else None,
        "bare_cpu_ms_per_claim": round(1000 * bare.cpu_s / bare.results, 3) if bare.results else None,
        "worker_counters": worker.counters,
    }


def _write_report(s: dict, docs: Path) -> None:
    ok = lambda flag: "met" if flag else "**missed**"  # noqa: E731
    names = list(s["profiles"])
    rows = [
        (
            "claims published / results / dead letters / unaccounted",
            lambda p: f"{s['claims']} / {p['results']} / {p['dead_letters']} / {p['unaccounted']}",
        ),
        ("worker throughput (claims/s, first publish to last result)", lambda p: p["worker_claims_per_s"]),
        ("bare Faust ceiling (claims/s, same measure)", lambda p: p["bare_faust_per_s"]),
        ("**ratio worker / bare Faust** (goal >= 0.40)", lambda p: f"**{p['ratio_vs_bare_faust']}**"),
        ("raw aiokafka consume-produce-commit loop (msg/s, context)", lambda p: p["raw_aiokafka_per_s"]),
        ("ratio worker / raw aiokafka", lambda p: p["ratio_vs_raw"]),
        (
            "end-to-end latency p50 / p99 (s, publish to result, queueing behind the burst)",
            lambda p: f"{p['e2e_p50_s']} / {p['e2e_p99_s']}",
        ),
        (
            "worker RSS before / peak / after (MB)",
            lambda p: f"{p['rss_mb']['before']} / {p['rss_mb']['peak']} / {p['rss_mb']['after']}",
        ),
        ("worker RSS growth (MB, goal < 300)", lambda p: p["rss_growth_mb"]),
        ("worker CPU over the burst (cores, all threads)", lambda p: p["worker_cpu_cores"]),
        (
            "CPU per claim, worker / bare Faust (ms)",
            lambda p: f"{p['worker_cpu_ms_per_claim']} / {p['bare_cpu_ms_per_claim']}",
        ),
    ]
    lines = [
        "## Claims: `flts bench claims`",
        "",
        f"Command: `flts bench claims --count {s['claims']} --identifiers {s['identifiers']}` — per profile a fresh "
        f"embedded Tansu broker, {PARTITIONS} partitions, one worker, file:// store. Every claim names an object of "
        f"its own ({s['object_rows']} rows of its cell, the newer half new: {s['claims']:,} objects), spread "
        f"round-robin over {s['identifiers']:,} identifiers. The ceiling is a bare Faust app "
        "(`flts_bench/bare_faust.py`: same broker, Faust defaults and producer settings; one agent that reads each "
        "claim and produces one result of a result's size), measured on the same broker before the worker. "
        "Profiles: `embedded` produces one record per batch (Tansu's exact end offsets, which recovery needs: "
        'docs/ARCHITECTURE.md, "Known traps"), `batching` lets the producer batch '
        "(`FLTS_EMBEDDED__SINGLE_RECORD_BATCHES=false`, a throughput profile for benchmarks only).",
        "",
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        *(f"| {label} | " + " | ".join(str(fn(s["profiles"][n])) for n in names) + " |" for label, fn in rows),
        "",
        "Goals per profile: "
        + "; ".join(
            f"{n}: 0 lost — {ok(p['unaccounted'] == 0 and p['dead_letters'] == 0)}, "
            f">= 0.40 of bare Faust — {ok((p['ratio_vs_bare_faust'] or 0) >= 0.40)}, "
            f"RSS growth < 300 MB — {ok(p['rss_growth_mb'] < 300)}"
            for n, p in s["profiles"].items()
        )
        + ".",
    ]
    docs.mkdir(parents=True, exist_ok=True)
    replace_section(docs / "BENCHMARKS.md", "## Claims: `flts bench claims`", "\n".join(lines))
