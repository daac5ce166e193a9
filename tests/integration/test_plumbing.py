"""End to end: claims on Kafka -> agent -> RocksDB table -> HTTP views, plus dead letters."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import requests

from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import claim, consume, poll, produce, put_object

pytestmark = pytest.mark.integration


def _put_object(var_dir, key: str, frame: pd.DataFrame) -> None:
    put_object(var_dir / "objects", key, frame)


def test_health_metrics_and_openapi(worker):
    assert requests.get(worker.url + "/healthz", timeout=5).json() == {"status": "ok"}
    metrics = requests.get(worker.url + "/metrics", timeout=5)
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "flts_http_requests_total" in metrics.text and "flts_faust_messages_received" in metrics.text
    doc = requests.get(worker.url + "/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.") and "/predict" in doc["paths"]


def test_claims_fill_table_and_cached_predict(worker, broker):
    frames = {ident: demo_frame(days=1, seed=i) for i, ident in enumerate(["site-1", "site-2", "site-3"])}
    for ident, df in frames.items():
        _put_object(worker.var_dir, f"claims/{ident}.parquet", df)
    produce(
        broker.bootstrap,
        "inference-data",
        [(ident.encode(), claim(ident, f"claims/{ident}.parquet", claim_id=ident), None) for ident in frames],
    )
    for ident, df in frames.items():
        summary = poll(
            lambda: (r := requests.get(f"{worker.url}/frames/{ident}", timeout=5)).status_code == 200 and r.json()
        )
        assert summary["last"].startswith(str(np.datetime64(df["time"].iloc[-1])).replace("T", "T")[:16])
        assert summary["cadence_s"] == 120 and summary["rows"] == 720
        body = requests.get(f"{worker.url}/predict/{ident}", params={"inference_length": 4}, timeout=10).json()
        assert body["cached"] is True and len(body["predictions"]) == 4
        assert body["predictions"][0]["ts"] > summary["last"]


def test_poison_claims_are_dead_lettered_and_processing_continues(worker, broker):
    _put_object(worker.var_dir, "claims/after.parquet", demo_frame(days=1, seed=9))
    _put_object(worker.var_dir, "claims/untrained-site.parquet", demo_frame(days=1, seed=10))
    poison = [
        (b"bad-1", b"\xff not json", None),
        (b"bad-2", claim("bad-2", "claims/missing.parquet"), None),
        (b"bad-3", claim("bad-3", "../../etc/passwd"), None),
        (b"bad-4", json.dumps({"identifier": "bad-4"}).encode(), None),
        (b"bad-5", b"{" + b"x" * 600_000, None),  # huge and broken
        (
            b"bad-6",
            json.dumps({"identifier": 7, "bucket": ["flts"], "object_key": {"k": 1}}).encode(),
            None,
        ),  # wrong types
        # An identifier no model was trained for is not poison: the default model serves it.
        (b"untrained-site", claim("untrained-site", "claims/untrained-site.parquet"), None),
        (b"after", claim("after", "claims/after.parquet"), None),
    ]
    produce(broker.bootstrap, "inference-data", poison)
    for ident in ("after", "untrained-site"):
        poll(lambda ident=ident: requests.get(f"{worker.url}/frames/{ident}", timeout=5).status_code == 200)
    letters = consume(broker.bootstrap, "flts-dead-letter", None, timeout=20)
    by_key = {m["key"]: m["value"] for m in letters}
    assert {b"bad-1", b"bad-2", b"bad-3", b"bad-4", b"bad-5", b"bad-6"} <= set(
        by_key
    ) and b"untrained-site" not in by_key
    assert by_key[b"bad-2"]["error_type"] == "ObjectNotFound"
    assert by_key[b"bad-3"]["error_type"] == "InvalidObjectKey"
    assert (
        by_key[b"bad-4"]["error_type"]
        == by_key[b"bad-5"]["error_type"]
        == by_key[b"bad-6"]["error_type"]
        == "SchemaError"
    )
    assert "identifier" in by_key[b"bad-6"]["error"] and by_key[b"bad-1"]["source"]["topic"] == "inference-data"


def test_expired_claims_are_skipped(worker, broker):
    _put_object(worker.var_dir, "claims/late.parquet", demo_frame(days=1, seed=11))
    past = str(int(time.time() * 1000) - 60_000).encode()
    _put_object(worker.var_dir, "claims/marker.parquet", demo_frame(days=1, seed=12))
    produce(
        broker.bootstrap,
        "inference-data",
        [
            (b"late", claim("late", "claims/late.parquet"), [("deadline_ms", past)]),
            (b"marker", claim("marker", "claims/marker.parquet"), None),
        ],
    )
    poll(lambda: requests.get(f"{worker.url}/frames/marker", timeout=5).status_code == 200)
    assert requests.get(f"{worker.url}/frames/late", timeout=5).status_code == 404
    assert 'flts_claims_total{outcome="expired"}' in requests.get(worker.url + "/metrics", timeout=5).text


def test_invalid_training_events_are_dead_lettered_and_unknown_models_rejected(worker, broker):
    tag = f"train-{time.time_ns()}"
    bad = {
        f"{tag}-json": b"{not json",
        f"{tag}-status": json.dumps({"status": "DONE", "run_id": "r1"}).encode(),
        f"{tag}-run": json.dumps({"status": "SUCCESS", "run_id": ""}).encode(),
        f"{tag}-empty": b"",
    }
    unknown = json.dumps({"status": "SUCCESS", "run_id": f"{tag}-no-such-run", "identifier": tag}).encode()
    produce(
        broker.bootstrap,
        "model-training",
        [(k.encode(), v, None) for k, v in bad.items()] + [(tag.encode(), unknown, None)],
    )
    # The agent survives every bad event: the valid one after them is decided (rejected: no such run).
    selected = poll(
        lambda: [
            m["value"]
            for m in consume(broker.bootstrap, "model-selected", None, timeout=20)
            if m["value"]["identifier"] == tag
        ],
        timeout=60,
        interval=1,
    )
    assert selected[0]["decision"] == "REJECTED" and "evaluation failed" in selected[0]["reason"]
    letters = {
        m["key"].decode(): m["value"]
        for m in consume(broker.bootstrap, "flts-dead-letter", None, timeout=20)
        if m["key"] and m["key"].decode().startswith(tag)
    }
    assert set(letters) == set(bad), "every invalid event is dead-lettered under its key"
    assert {v["source"]["topic"] for v in letters.values()} == {"model-training"}
    assert all(v["error_type"] == "SchemaError" and v["error"] for v in letters.values()), letters
    assert requests.get(worker.url + "/healthz", timeout=5).status_code == 200
