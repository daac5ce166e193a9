"""`flts bench http`: this worker vs `mlflow models serve` vs a bare aiohttp handler, same payload."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from flts_bench.common import replace_section, spawn, train_bench_model, wait_http
from flts_bench.loadgen import JSON, LoadResult, drive, run_load
from flts_bench.worker import Worker, rss_mb, service_topics
from flts_streams.core.settings import child_env
from flts_streams.kafka.embedded_broker import ensure_topics, free_port, start_tansu

log = logging.getLogger(__name__)
LEVELS = (1, 16, 64)
ROUNDS = 3  # every level of every server is measured once per round (see _interleaved)
SLOT_WARMUP_S = 0.5
ADMITTED = 64  # the worker's max_in_flight here: 64 connections is its sustainable load, 256 is 4x it
WORKER, MLFLOW, BARE = "flts worker", "mlflow models serve", "bare aiohttp"
HISTORY = "flts worker, 7-day body"  # 5,040 rows: the most history the models read (a row of its own, no ratio)
HISTORY_ROWS = 5_040
IDLE_AFTER_S = 5.0  # how long the worker idles before its memory is read again


@dataclass(frozen=True)
class Target:
    """A server under test."""

    name: str
    url: str
    body: bytes


def answer_size(url: str, body: bytes) -> int:
    """Bytes of the successful answer to ``body`` (the bare handler answers that many)."""
    # The load generator's header: without it the worker answers a 64-byte 415, and the bare
    # handler sized on that answered 64 bytes in every run before 2026-12-02 (third session).
    resp = requests.post(url, data=body, headers=JSON, timeout=30)
    if resp.status_code != 200:
        raise RuntimeError(f"{url} answered {resp.status_code} to the bench payload: {resp.text[:200]}")
    return len(resp.content)


def _payloads() -> tuple[bytes, bytes]:
    from flts_bench.payloads import PayloadPool

    body = PayloadPool(seed=1).payload(identifier="bench", inference_length=30)
    cols = list(body["data"])
    rows = [[body["data"][c][i] for c in cols] for i in range(30)]
    mlflow_body = {"dataframe_split": {"columns": cols, "data": rows}}
    return json.dumps(body).encode(), json.dumps(mlflow_body).encode()


def _history_payload() -> bytes:
    from flts_bench.payloads import PayloadPool

    body = PayloadPool(rows=HISTORY_ROWS, seed=2, days=HISTORY_ROWS // 720 + 2).payload(identifier="bench")
    return json.dumps(body).encode()


def run(out_dir: Path, seconds: float, docs: Path, rounds: int = ROUNDS, scale_free: bool = False) -> dict:
    """Start the three servers, drive each at 1/16/64 connections in interleaved rounds, plus health and overload.

    The model served: a site's, as the bench identifier's own champion (a graph shared by its architecture), or
    with ``scale_free`` the global model (`flts train --global`, a graph of its own), as in a network deployment.
    The report says which rung answered (the first answer's ``model_source``).
    """
    var = out_dir / "var"
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    tracking, uri = train_bench_model(var, scale_free=scale_free)
    ours_body, mlflow_body = _payloads()
    (out_dir / "body.json").write_bytes(ours_body)  # for other clients (loadtests/wrk_post.lua)
    bindir = Path(sys.executable).parent
    # mlflow serve execs `uvicorn` by name: the venv's bin must come first on PATH.
    base_env = child_env(inherit_flts=False)
    base_env["PATH"] = f"{bindir}{os.pathsep}{base_env.get('PATH', '')}"
    with ExitStack() as stack:
        broker = start_tansu("127.0.0.1", free_port(), var / "tansu.log")
        stack.callback(broker.stop)
        ensure_topics(broker.bootstrap, service_topics(), 4)
        mport, bport = free_port(), free_port()
        worker = Worker(
            var,
            broker.url,
            {"FLTS_MODEL__DEFAULT_URI": uri, "FLTS_SERVING__MAX_IN_FLIGHT": str(ADMITTED)},
            log_level="warn",
        ).start()
        stack.callback(worker.stop)
        wport = worker.port
        spawn(
            stack,
            [
                str(bindir / "mlflow"),
                "models",
                "serve",
                "-m",
                uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(mport),
                "--workers",
                "1",
            ],
            base_env | {"MLFLOW_TRACKING_URI": tracking},
            var / "mlflow.log",
        )
        worker.wait_ready(timeout=120)
        size = answer_size(f"http://127.0.0.1:{wport}/predict", ours_body)
        source = requests.post(f"{worker.url}/predict", data=ours_body, headers=JSON, timeout=30).json()["model_source"]
        spawn(stack, [sys.executable, "-m", "flts_bench.bare", str(bport), str(size)], base_env, var / "bare.log")
        wait_http(f"http://127.0.0.1:{mport}/ping")
        wait_http(f"http://127.0.0.1:{bport}/ping")
        targets = [
            Target(WORKER, f"http://127.0.0.1:{wport}/predict", ours_body),
            Target(MLFLOW, f"http://127.0.0.1:{mport}/invocations", mlflow_body),
            Target(BARE, f"http://127.0.0.1:{bport}/predict", ours_body),
            Target(HISTORY, f"http://127.0.0.1:{wport}/predict", _history_payload()),
        ]
        by_round = _interleaved(targets, seconds / rounds, rounds)
        health, loaded = drive(_health_under_load(targets[0], wport, seconds))
        rss = {"warm": round(rss_mb(worker.pid), 1)}  # after the worker's own 1/16/64 runs and the health phase
        overload = _overload_rounds(targets[0], seconds / rounds, rounds)
        rss["after_overload"] = round(rss_mb(worker.pid), 1)
        time.sleep(IDLE_AFTER_S)
        rss["after_idle"] = round(rss_mb(worker.pid), 1)
    summary = _summary(by_round, health, loaded, overload, seconds, rounds, size, rss)
    summary |= {"scale_free": scale_free, "model_source": source}
    write_report(summary, docs, out_dir)
    return summary


Rounds = list[dict[str, dict[int, LoadResult]]]  # round -> target name -> connections -> result


def _interleaved(targets: list[Target], slot_s: float, rounds: int) -> Rounds:
    """Every target at every level once per round, the target order rotating between rounds.

    Shared machines drift by tens of percent within a minute; ratios taken within one round
    compare servers measured seconds apart, not a minute apart.
    """
    out: Rounds = []
    for r in range(rounds):
        this: dict[str, dict[int, LoadResult]] = {t.name: {} for t in targets}
        for c in LEVELS:
            for t in targets[r % len(targets) :] + targets[: r % len(targets)]:
                this[t.name][c] = drive(run_load(t.url, t.body, c, slot_s, warmup=SLOT_WARMUP_S))
        log.info(
            "round %d of %d: %s",
            r + 1,
            rounds,
            {n: {c: round(x.throughput) for c, x in v.items()} for n, v in this.items()},
        )
        out.append(this)
    return out


def _overload_rounds(target: Target, slot_s: float, rounds: int) -> list[tuple[LoadResult, LoadResult]]:
    """Pairs of (the sustainable load, 4x it), so each overload p99 has its baseline from the same moment."""
    return [
        (
            drive(run_load(target.url, target.body, ADMITTED, slot_s, warmup=SLOT_WARMUP_S)),
            drive(run_load(target.url, target.body, 4 * ADMITTED, slot_s, warmup=SLOT_WARMUP_S)),
        )
        for _ in range(rounds)
    ]


async def _health_under_load(target: Target, port: int, seconds: float) -> tuple[LoadResult, LoadResult]:
    load = asyncio.create_task(run_load(target.url, target.body, ADMITTED, seconds, warmup=0.5))
    await asyncio.sleep(0.7)
    health = await run_load(f"http://127.0.0.1:{port}/healthz", b"", 1, seconds - 1.5, method="GET", warmup=0)
    return health, await load


def _row(r: LoadResult) -> dict:
    return {
        "rps": round(r.throughput, 1),
        "p50_ms": round(r.quantile_ms(0.5), 2),
        "p99_ms": round(r.quantile_ms(0.99), 2),
        "non_200": {str(k): v for k, v in r.statuses.items() if k != 200},
        "errors": dict(r.errors),
    }


def _peak(levels: dict[int, LoadResult]) -> float:
    return max(r.throughput for r in levels.values())


def _spread(values: list[float], digits: int = 3) -> dict:
    """Median and range of a per-round figure."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "rounds": [round(v, digits) for v in values],
    }


def _summary(
    by_round: Rounds,
    health: LoadResult,
    loaded: LoadResult,
    overload: list[tuple[LoadResult, LoadResult]],
    seconds: float,
    rounds: int,
    size: int,
    rss: dict[str, float],
) -> dict:
    names = list(by_round[0])
    pooled = {n: {c: LoadResult.pooled([r[n][c] for r in by_round]) for c in LEVELS} for n in names}
    ours, ml, bare = (pooled[n] for n in (WORKER, MLFLOW, BARE))
    sustained = LoadResult.pooled([pair[0] for pair in overload])
    over = LoadResult.pooled([pair[1] for pair in overload])
    return {
        "seconds_per_level": seconds,
        "rounds": rounds,
        "response_bytes": size,
        "table": {name: {c: _row(r) for c, r in levels.items()} for name, levels in pooled.items()},
        "ratios": {
            "throughput_vs_mlflow": {c: round(ours[c].throughput / max(ml[c].throughput, 1e-9), 1) for c in LEVELS},
            "peak_throughput_vs_mlflow_peak": _spread(
                [_peak(r[WORKER]) / max(_peak(r[MLFLOW]), 1e-9) for r in by_round], 1
            ),
            "p99_at_64_vs_mlflow_p99_at_16": round(ours[64].quantile_ms(0.99) / ml[16].quantile_ms(0.99), 2),
            "peak_throughput_vs_bare_peak": _spread([_peak(r[WORKER]) / _peak(r[BARE]) for r in by_round]),
        },
        "healthz_while_saturated": {
            "p99_ms": round(health.quantile_ms(0.99), 2),
            "requests": health.ok,
            "predict_rps_meanwhile": round(loaded.throughput, 1),
        },
        "overload": {
            "admitted": ADMITTED,
            "connections": 4 * ADMITTED,
            "statuses": {str(k): v for k, v in over.statuses.items()},
            "connection_errors": dict(over.errors),
            "accepted_p99_ms": round(over.quantile_ms(0.99), 2),
            "sustainable_p99_ms": round(sustained.quantile_ms(0.99), 2),
            # ADMITTED connections = max_in_flight: the sustainable load, measured just before each overload slot
            "accepted_p99_vs_sustainable_p99": _spread(
                [o.quantile_ms(0.99) / s.quantile_ms(0.99) for s, o in overload], 2
            ),
            "accepted_p99_vs_p99_at_1": round(over.quantile_ms(0.99) / ours[1].quantile_ms(0.99), 1),
            # Closed-loop clients send as fast as they are answered: this is the rate offered, in
            # multiples of the sustainable rate (the "4x the sustainable rate" would be 4).
            "answered_rate_vs_sustainable_rate": _spread(
                [_answered_rate(o) / max(s.throughput, 1e-9) for s, o in overload], 2
            ),
            "rss_mb": rss,
        },
    }


def _answered_rate(r: LoadResult) -> float:
    """Requests answered per second, whatever the status."""
    return sum(r.statuses.values()) / r.seconds if r.seconds else 0.0


def _fmt_spread(x: dict, unit: str = "") -> str:
    return f"{x['median']}{unit} (rounds {x['min']}-{x['max']}{unit})"


MODEL_KINDS = ("a per-site one", "the global model (scale-free inputs, `flts train --global`)")


def write_report(summary: dict, docs: Path, out_dir: Path) -> None:
    """docs/BENCHMARKS.md section + PNG + raw JSON."""
    (out_dir / "bench-http.json").write_text(json.dumps(summary, indent=2))
    png = docs / "img" / "bench-http.png"
    _plot(summary, png)
    lines = [
        "## HTTP: `flts bench http`",
        "",
        f"Command: `flts bench http --seconds {summary['seconds_per_level']:g}"
        f"{' --scale-free' if summary.get('scale_free') else ''}` "
        f"(one run; the model served: {MODEL_KINDS[bool(summary.get('scale_free'))]}, "
        f"answers with `model_source: {summary.get('model_source', '?')}`"
        "; closed-loop async client in the "
        f"same machine; 30-row payload, 30-step horizon, a {summary['response_bytes']}-byte answer, which the bare "
        "handler answers too; 2 cores shared by client and server). Each server is measured "
        f"at each level in {summary['rounds']} interleaved rounds (the table pools them); ratios are taken within "
        "each round and reported as the median with the range over rounds.",
        "",
        "| server | conns | req/s | p50 ms | p99 ms | non-200 | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, levels in summary["table"].items():
        for c, r in levels.items():
            lines.append(
                f"| {name} | {c} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
                f"{r['non_200'] or ''} | {r['errors'] or ''} |"
            )
    ra = summary["ratios"]
    h, o = summary["healthz_while_saturated"], summary["overload"]
    n, a = o["connections"], o["admitted"]
    lines += [
        "",
        "| ratio | value | target |",
        "|---|---|---|",
        f"| worker / mlflow serve throughput at 1, 16, 64 conns (pooled) | {ra['throughput_vs_mlflow']} | >= 10x |",
        f"| worker peak / mlflow peak | {_fmt_spread(ra['peak_throughput_vs_mlflow_peak'], 'x')} | >= 10x |",
        f"| worker p99 at 64 / mlflow p99 at 16 | {ra['p99_at_64_vs_mlflow_p99_at_16']} | <= 1 |",
        f"| worker peak / bare aiohttp peak | {_fmt_spread(ra['peak_throughput_vs_bare_peak'])} | >= 0.40 |",
        f"| /healthz p99 while /predict saturated (64 conns, {h['predict_rps_meanwhile']} req/s) | "
        f"{h['p99_ms']} ms | < 50 ms |",
        f"| {n} conns (4x the {a} admitted): statuses | {o['statuses']} | only 200/429 |",
        f"| {n} conns: connection errors | {o['connection_errors'] or 0} | 0 |",
        f"| {n} conns: accepted p99 / p99 at {a} conns (the sustainable load, measured just before) | "
        f"{_fmt_spread(o['accepted_p99_vs_sustainable_p99'])} | <= 3 |",
        f"| {n} conns: accepted p99 ms / sustainable p99 ms (pooled) | "
        f"{o['accepted_p99_ms']} / {o['sustainable_p99_ms']} | |",
        f"| {n} conns: accepted p99 / p99 at 1 conn (idle) | {o['accepted_p99_vs_p99_at_1']} | (context) |",
        f"| {n} conns: requests answered per second (200 + 429) / sustainable req/s, i.e. the rate offered | "
        f"{_fmt_spread(o['answered_rate_vs_sustainable_rate'], 'x')} | (context: 4x the rate would be 4) |",
        f"| worker RSS MB: warm / after overload / {IDLE_AFTER_S:g} s later | {o['rss_mb']['warm']} / "
        f"{o['rss_mb']['after_overload']} / {o['rss_mb']['after_idle']} | back to warm (+10%) |",
        "",
        "![HTTP benchmark](img/bench-http.png)",
        "",
    ]
    replace_section(docs / "BENCHMARKS.md", "## HTTP: `flts bench http`", "\n".join(lines))


def _plot(summary: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, levels in summary["table"].items():
        xs = list(levels)
        a.plot(xs, [levels[c]["rps"] for c in xs], marker="o", label=name)
        b.plot(xs, [levels[c]["p99_ms"] for c in xs], marker="o", label=name)
    a.set(xscale="log", yscale="log", xlabel="connections", ylabel="req/s", title="throughput")
    b.set(xscale="log", yscale="log", xlabel="connections", ylabel="p99 ms", title="p99 latency")
    a.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
