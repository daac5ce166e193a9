"""What the benchmarks share: helper processes, the benchmark model, the report file."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import requests
from aiokafka import AIOKafkaConsumer

from flts_streams.core.settings import Settings


def wait_http(url: str, timeout: float = 120.0) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def spawn(stack: ExitStack, cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``cmd`` logging to ``log_path``; ``stack`` stops it."""
    out = stack.enter_context(open(log_path, "ab"))
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(stop, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """Terminate, then kill after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def train_bench_model(var: Path, scale_free: bool = False) -> tuple[str, str]:
    """A small demo model registered in ``var``'s MLflow store; returns (tracking URI, model URI).

    Registered as the champion of the identifier ``bench``, or with ``scale_free`` as the global model
    (``flts train --global``: it answers every identifier without a champion of its own).
    """
    from flts_streams.forecasting import packaging
    from flts_streams.forecasting.demo import demo_frame
    from flts_streams.forecasting.pipeline import train_and_register, train_global_and_register
    from flts_streams.forecasting.training import TrainConfig

    settings = Settings(paths={"var_dir": var})
    packaging.configure(settings.mlflow_tracking_uri)
    packaging.ensure_experiment("flts-bench", settings.mlflow_artifact_root)
    data = var / "bench.csv"
    demo_frame(days=7, seed=3).to_csv(data, index=False)
    cfg = TrainConfig(epochs=3)
    if scale_free:
        reg = train_global_and_register([data], settings.model.global_name, cfg, alias="champion", progress=False)
    else:
        reg = train_and_register(data, "bench", cfg, registry_prefix="flts-", alias="champion", progress=False)
    return settings.mlflow_tracking_uri, reg.model_uri


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the ``heading`` section in place (append it when new), keeping the other sections."""
    old = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nRatios against baselines measured in the same run; "
        "absolute numbers vary with the shared machine.\n"
    )
    if heading not in old:
        path.write_text(old.rstrip() + "\n\n" + text.rstrip() + "\n")
        return
    start = old.index(heading)
    nxt = old.find("\n## ", start + len(heading))
    rest = old[nxt + 1 :] if nxt != -1 else ""
    path.write_text(old[:start] + text.rstrip() + "\n" + ("\n" + rest if rest else ""))


async def account_claims(bootstrap: str, tag: str, n: int, timeout: float) -> tuple[dict[str, float], int, float]:
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


def claim_counters(port: int) -> dict[str, float]:
    """The worker's own claim outcome counters (to tell a lost claim from a slow one)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("flts_claims_total{")
    }
