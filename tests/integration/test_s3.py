"""The S3 path against a real S3-compatible server (moto's): store semantics, claims from S3, outage retried."""

from __future__ import annotations

import http.client
import io
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from flts_streams.commands.cli import main
from flts_streams.core.errors import ObjectNotFound, ObjectTooLarge, TransientError
from flts_streams.core.settings import Settings
from flts_streams.forecasting.demo import demo_frame
from flts_streams.kafka.embedded_broker import free_port
from flts_streams.streaming.object_store import S3Store, open_store
from tests.integration.harness import Worker, claim, consume, metric, poll, produce, start_broker
from tests.test_flts_streams.test_streaming.test_claim_training_data import store_network

pytestmark = pytest.mark.integration
SECRET = f"secret-{uuid.uuid4().hex}"  # moto accepts any key pair
CREDS = {"FLTS_STORAGE__ACCESS_KEY": "testing", "FLTS_STORAGE__SECRET_KEY": SECRET, "FLTS_STORAGE__REGION": "us-east-1"}


class S3Server:
    """moto's S3 server on a loopback port; stop/start keep its in-process state."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def settings(self, **storage) -> Settings:
        return Settings(
            storage={
                "url": f"s3://127.0.0.1:{self.port}",
                "access_key": "testing",
                "secret_key": "testing",
                "region": "us-east-1",
                "timeout_s": 2.0,
                **storage,
            }
        )


class FaultyS3:
    """A loopback HTTP proxy to the S3 server that answers every request with an S3 error while ``fault`` is set."""

    def __init__(self, upstream: int) -> None:
        self.fault: tuple[int, str] | None = None
        self.faults_served = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.fault is not None:
                    proxy.faults_served += 1
                    status, code = proxy.fault
                    payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=10)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def s3() -> Iterator[S3Server]:
    server = S3Server()
    server.server.start()
    # moto keeps its buckets in process-wide state, across servers: without a reset, objects another test
    # stored earlier in the same process are still there (a test's counts then depend on the test order).
    requests.post(f"http://127.0.0.1:{server.port}/moto-api/reset", timeout=10).raise_for_status()
    open_store(server.settings()).client.make_bucket("flts")  # type: ignore[attr-defined]
    yield server
    server.server.stop()


def test_s3_store_round_trip_missing_and_outage(s3):
    store = open_store(s3.settings())
    assert isinstance(store, S3Store)
    store.put("flts", "a/b.bin", b"hello")
    assert store.get("flts", "a/b.bin") == b"hello"
    with pytest.raises(ObjectTooLarge, match="5 bytes, above the 4-byte limit"):
        store.get("flts", "a/b.bin", max_bytes=4)  # judged by Content-Length, before the body is read
    with pytest.raises(ObjectNotFound):
        store.get("flts", "a/missing.bin")
    store.put("flts", "a/c/d.bin", b"x")
    assert store.list("flts", "a/") == ["a/b.bin", "a/c/d.bin"] and store.list("flts", "z/") == []
    s3.server.stop()
    try:
        with pytest.raises(TransientError):
            store.get("flts", "a/b.bin")
    finally:
        s3.server.start()
    assert store.get("flts", "a/b.bin") == b"hello"


def test_the_global_model_trains_on_a_networks_claims_in_s3(tmp_path, monkeypatch, capsys, s3):
    """`flts train --global --claims` reads the prediction logs and claim objects where the workers wrote them."""
    store_network(open_store(s3.settings()), time.time())
    env = {"FLTS_PATHS__VAR_DIR": str(tmp_path / "var"), "FLTS_STORAGE__URL": f"s3://127.0.0.1:{s3.port}", **CREDS}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["train", "--global", "--claims", "--epochs", "1", "--members", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 identifiers, 660 rows in 2 series" in out and "registered=flts-global version=1" in out
    assert not (tmp_path / "var" / "objects").exists()  # nothing copied down


def _s3_worker(tmp_path, trained, broker, s3_port: int) -> Worker:
    """A worker reading claims from the S3 server at ``s3_port`` with short timeouts and retries."""
    var, uri = trained
    return Worker(
        tmp_path / "w",
        broker.url,
        {
            "FLTS_MODEL__DEFAULT_URI": uri,
            "FLTS_MODEL__TRACKING_URI": f"sqlite:///{var / 'mlflow.db'}",
            "FLTS_STORAGE__URL": f"s3://127.0.0.1:{s3_port}",
            "FLTS_STORAGE__TIMEOUT_S": "1",
            **CREDS,
            "FLTS_STREAMING__RETRY_BACKOFF_S": "0.2",
        },
    )


def _put_demo(store, ident: str, seed: int) -> None:
    buf = io.BytesIO()
    demo_frame(days=1, seed=seed).to_parquet(buf, index=False)
    store.put("flts", f"{ident}.parquet", buf.getvalue())


def test_claims_from_s3_survive_an_outage(tmp_path, trained, s3):
    broker = start_broker(tmp_path / "broker")
    worker = _s3_worker(tmp_path, trained, broker, s3.port)
    ident = f"s3-{uuid.uuid4().hex[:6]}"
    store = open_store(s3.settings())
    _put_demo(store, ident, seed=600)
    try:
        worker.start().wait_ready()
        produce(
            broker.bootstrap,
            "inference-data",
            [(ident.encode(), claim(ident, f"{ident}.parquet", claim_id="ok"), None)],
        )
        first = consume(broker.bootstrap, "inference-results", 1, timeout=60)
        assert first[0]["value"]["claim"]["claim_id"] == "ok"
        s3.server.stop()
        produce(
            broker.bootstrap,
            "inference-data",
            [(ident.encode(), claim(ident, f"{ident}.parquet", claim_id="during"), None)],
        )
        poll(lambda: metric(worker, 'flts_claims_total{outcome="retried"}') >= 2, timeout=60)
        assert (
            metric(worker, 'flts_claims_total{outcome="dead_lettered"}') == 0
        )  # transient: retried, not dead-lettered
        s3.server.start()
        results = consume(broker.bootstrap, "inference-results", 2, timeout=90)
        assert [r["value"]["claim"]["claim_id"] for r in results] == ["ok", "during"]
        logs = [
            o.object_name for o in store.client.list_objects("flts", prefix=f"inference-logs/{ident}/", recursive=True)
        ]
        assert len(logs) == 2
        assert requests.get(f"{worker.url}/predict/{ident}", timeout=10).json()["cached"] is True
    finally:
        worker.stop()
        broker.stop()
    assert SECRET not in worker.log_path.read_text(errors="replace")  # credentials are never logged


@pytest.mark.parametrize("fault", [(503, "SlowDown"), (500, "InternalError")])
def test_s3_errors_are_transient_and_clear(s3, fault):
    store = open_store(s3.settings())
    store.put("flts", "f/x.bin", b"data")
    faulty = FaultyS3(s3.port)
    try:
        through = open_store(s3.settings(url=f"s3://127.0.0.1:{faulty.port}"))
        assert through.get("flts", "f/x.bin") == b"data"
        faulty.fault = fault
        with pytest.raises(TransientError):
            through.get("flts", "f/x.bin")
        with pytest.raises(TransientError):
            through.put("flts", "f/y.bin", b"y")
        assert faulty.faults_served >= 2
        faulty.fault = None
        assert through.get("flts", "f/x.bin") == b"data"
    finally:
        faulty.stop()


def test_claims_survive_s3_answering_503(tmp_path, trained, s3):
    faulty = FaultyS3(s3.port)
    broker = start_broker(tmp_path / "broker")
    worker = _s3_worker(tmp_path, trained, broker, faulty.port)
    ident = f"s3e-{uuid.uuid4().hex[:6]}"
    _put_demo(open_store(s3.settings()), ident, seed=601)
    try:
        worker.start().wait_ready()
        faulty.fault = (503, "SlowDown")
        produce(
            broker.bootstrap,
            "inference-data",
            [(ident.encode(), claim(ident, f"{ident}.parquet", claim_id="e1"), None)],
        )
        poll(lambda: metric(worker, 'flts_claims_total{outcome="retried"}') >= 2, timeout=60)
        assert metric(worker, 'flts_claims_total{outcome="dead_lettered"}') == 0  # 5xx is transient: retried
        faulty.fault = None
        results = consume(broker.bootstrap, "inference-results", 1, timeout=90)
        assert [r["value"]["claim"]["claim_id"] for r in results] == ["e1"]
    finally:
        worker.stop()
        broker.stop()
        faulty.stop()
