"""Test harness: embedded broker, real worker subprocesses, Kafka and HTTP helpers."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

import flts_bench.worker
from flts_bench.worker import service_topics
from flts_streams.core.settings import Settings
from flts_streams.forecasting.demo import demo_frame
from flts_streams.kafka.embedded_broker import EmbeddedBroker, ensure_topics, free_port, port_open, start_tansu
from tests.integration.proxy import TcpProxy


class Worker(flts_bench.worker.Worker):
    """The shared worker launcher (flts_bench/worker.py) with the tests' defaults and a diagnosis for failing tests."""

    def env(self) -> dict[str, str]:
        """Micro-batches close after 20 ms instead of the default (tests send few claims and wait for each)."""
        return {**super().env(), "FLTS_STREAMING__BATCH_TIMEOUT_S": "0.02", **self.extra_env}

    def diagnose(self, keep: tuple[str, ...] = ("_drain_messages", "agents/claims.py", "recovery.py", "seek")) -> str:
        """Consumer metrics plus the stacks of the tasks that move claims (mode's SIGUSR1 dump), for a failing test."""
        try:
            text = requests.get(self.url + "/metrics", timeout=5).text
            samples = [
                ln
                for ln in text.splitlines()
                if ln.startswith(
                    (
                        "flts_claims_total",
                        "flts_stream_buffer_depth",
                        "flts_paused_partitions",
                        "flts_consumer_lag",
                        "flts_consumer_offset_repairs_total",
                    )
                )
            ]
        except requests.RequestException as exc:
            samples = [f"metrics unavailable: {exc!r}"]
        # Faust's recovery tables would fill the tail: keep the log lines, not the table rows.
        tail = "\n".join([ln for ln in self.log_tail(400).splitlines() if not ln.startswith(("|", "+"))][-30:])
        stacks: list[str] = []
        if self.process is not None and self.process.poll() is None and self.log_path is not None:
            before = self.log_path.stat().st_size
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(3)
            with open(self.log_path, errors="replace") as log:
                log.seek(before)
                dump = log.read()
            # Keep the frames, not the locals: every task's stack, trimmed to the ones that move claims.
            stacks = [
                "\n".join(ln for ln in block.splitlines()[:60] if ln.startswith(("  File", "Stack")) or "line" in ln)
                for block in dump.split("Stack for ")[1:]
                if any(k in block for k in keep)
            ]
        committed = group_offsets(self.broker_url.split("://", 1)[-1])
        return "\n".join(
            [*samples, f"committed by the group: {committed}", "--- log tail ---", tail, "--- stacks ---", *stacks]
        )


def group_offsets(
    bootstrap: str, group: str = "flts-streams", topic: str = "inference-data"
) -> dict[int, int | None] | str:
    """The group's committed offset per partition of ``topic`` as the broker holds it (for failure dumps).

    A consumer that never subscribes asks for them (it does not join the group, so no rebalance);
    aiokafka's admin client cannot decode Tansu's OffsetFetch answer.
    """

    async def run() -> dict[int, int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        try:
            await consumer.start()
            partitions = sorted(consumer.partitions_for_topic(topic) or ())
            return {p: await consumer.committed(TopicPartition(topic, p)) for p in partitions}
        finally:
            await consumer.stop()

    try:
        return asyncio.run(asyncio.wait_for(run(), 15))
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the failure it explains
        return f"unavailable: {exc!r}"


def produce(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]],
    pipelined: bool = False,
) -> None:
    """Send (key, value, headers) messages and wait for acks (one record per batch, as Tansu needs).

    ``pipelined`` waits for all acks at the end: one request then carries a batch for every
    partition (order within a partition is kept), which matters where each write is slow.
    """

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0)
        await producer.start()
        try:
            if pipelined:
                acks = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in messages]
                await asyncio.gather(*acks)
            else:
                for key, value, headers in messages:
                    await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()

    asyncio.run(run())


def consume(bootstrap: str, topic: str, expect: int | None, timeout: float = 60.0) -> list[dict]:
    """Read JSON messages from the start of ``topic`` (no group): ``expect`` of them, or (None) all there are."""

    async def run() -> list[dict]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        out: list[dict] = []
        try:
            deadline = idle_since = time.monotonic()
            deadline += timeout
            while (expect is None or len(out) < expect) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                if batch:
                    idle_since = time.monotonic()
                elif expect is None and time.monotonic() - idle_since > 1.5:
                    break  # nothing new for a while: that is all there is
                for records in batch.values():
                    out.extend(
                        {"key": r.key, "value": json.loads(r.value), "partition": r.partition, "offset": r.offset}
                        for r in records
                    )
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def poll(fn, timeout: float = 60.0, interval: float = 0.25):
    """Call fn until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s (last={last!r})")


def put_object(objects_root: Path, key: str, frame, bucket: str = "flts") -> None:
    """Write a DataFrame as a Parquet object into a file:// store."""
    path = objects_root / bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    path.write_bytes(buf.getvalue())


def put_demo_objects(objects_root: Path, identifiers: list[str], seed: int, days: int = 1) -> None:
    """One demo-data Parquet object per identifier at ``<identifier>.parquet``."""
    from flts_streams.forecasting.demo import demo_frame

    for i, ident in enumerate(identifiers):
        put_object(objects_root, f"{ident}.parquet", demo_frame(days=days, seed=seed + i))


def metric(worker: Worker, sample: str) -> float:
    """Value of one Prometheus sample line (name plus labels, exactly as exposed); 0 when absent."""
    for line in requests.get(worker.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def claim(identifier: str, key: str, **extra) -> bytes:
    """A claim-check message value."""
    return json.dumps({"identifier": identifier, "bucket": "flts", "object_key": key, **extra}).encode()


class PersistentBroker:
    """Tansu on S3 storage (a moto server subprocess): topics and group offsets survive a broker kill."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self.s3_port = free_port()
        self.s3: subprocess.Popen | None = None
        self.broker: EmbeddedBroker | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> PersistentBroker:
        """(Re)start Tansu on the same port and bucket; the S3 server is started the first time."""
        if self.s3 is None:
            self._start_s3()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{self.s3_port}",
            "AWS_ALLOW_HTTP": "true",
        }
        self.broker = start_tansu("127.0.0.1", self.port, self.log_dir / "tansu.log", storage="s3://tansu/", env=env)
        return self

    def _start_s3(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.s3 = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)],
            stdout=open(self.log_dir / "moto.log", "ab"),
            stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True,
        )
        poll(lambda: port_open("127.0.0.1", self.s3_port), timeout=30)
        requests.put(f"http://127.0.0.1:{self.s3_port}/tansu", timeout=10).raise_for_status()  # moto takes it unsigned

    def kill(self) -> None:
        """SIGKILL the broker: no flush, no goodbye to clients."""
        assert self.broker is not None
        self.broker.process.kill()
        self.broker.process.wait(10)

    def stop(self) -> None:
        """Stop the broker and the S3 server."""
        if self.broker is not None:
            self.broker.stop()
        if self.s3 is not None:
            self.s3.terminate()
            self.s3.wait(10)


def claims_env(trained, objects) -> dict[str, str]:
    var, uri = trained
    return {
        "FLTS_MODEL__DEFAULT_URI": uri,
        "FLTS_MODEL__TRACKING_URI": f"sqlite:///{var / 'mlflow.db'}",
        "FLTS_STORAGE__URL": f"file://{objects}",
        "FLTS_STREAMING__BATCH_SIZE": "32",
    }


def run_results(bootstrap: str, run: str) -> list[dict]:
    return [
        r["value"]["claim"]
        for r in consume(bootstrap, "inference-results", None, timeout=30)
        if str(r["value"]["claim"]["claim_id"]).startswith(run)
    ]


def wait_for_results(
    bootstrap: str, run: str, count: int, timeout: float = 180, watch: Worker | None = None
) -> list[dict]:
    """Results of ``run`` once ``count`` claims have one; on timeout, says how many and what ``watch`` is doing."""

    def enough() -> list[dict] | None:
        res = run_results(bootstrap, run)
        return res if len({c["claim_id"] for c in res}) >= count else None

    try:
        return poll(enough, timeout=timeout, interval=2)
    except AssertionError:
        done = len({c["claim_id"] for c in run_results(bootstrap, run)})
        raise AssertionError(
            f"{done} of {count} claims have a result after {timeout}s\n{watch.diagnose() if watch else ''}"
        ) from None


def assert_nothing_lost(results: list[dict], ids: list[str]) -> Counter:
    """Every claim has a result; repeats carry identical coordinates. Returns repeats per claim."""
    assert {c["claim_id"] for c in results} == set(ids)
    coords: dict[str, set] = {}
    for c in results:
        coords.setdefault(c["claim_id"], set()).add((c["topic"], c["partition"], c["offset"]))
    assert all(len(v) == 1 for v in coords.values()), "a repeated claim is identifiable by its coordinates"
    return Counter(c["claim_id"] for c in results) - Counter(set(ids))


def predict_payload(rows: int = 30, seed: int = 0, identifier: str = "PobleSec", days: int = 1, **extra) -> dict:
    """A valid /predict body: the last ``rows`` rows of ``days`` of demo data; ``extra`` fields added."""
    df = demo_frame(days=days, seed=seed, gaps=0, blanks=0).tail(rows).rename(columns={"time": "ts"})
    return {"identifier": identifier, "data": {c: df[c].tolist() for c in df.columns}, **extra}


def post_predict(worker, body, **kw) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
    return requests.post(worker.url + "/predict", data=data, headers=headers, timeout=30, **kw)


ADMIN_TOKEN = "s3cret-admin-token-for-tests"  # at least 16 characters, or the admin routes stay disabled

TOPICS = service_topics()


def start_broker(log_dir: Path) -> EmbeddedBroker:
    """A fresh in-memory Tansu with the service topics."""
    log_dir.mkdir(parents=True, exist_ok=True)
    broker = start_tansu("127.0.0.1", free_port(), log_dir / "tansu.log")
    ensure_topics(broker.bootstrap, TOPICS, Settings().topics.partitions)
    return broker


def broker_behind_proxy(log_dir: Path, topics: tuple[str, ...] = TOPICS) -> tuple[TcpProxy, EmbeddedBroker, str]:
    """A fresh Tansu that advertises a TcpProxy in front of it, with ``topics``: (proxy, broker, bootstrap).

    Every client connection (bootstrap and leader) goes through the proxy, so ``proxy.cut()`` is an outage.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    real = free_port()
    proxy = TcpProxy(real).start()
    broker = start_tansu("127.0.0.1", real, log_dir / "tansu.log", advertised_port=proxy.port)
    bootstrap = f"127.0.0.1:{proxy.port}"
    ensure_topics(bootstrap, topics, Settings().topics.partitions)
    return proxy, broker, bootstrap
