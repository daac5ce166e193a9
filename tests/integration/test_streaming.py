"""Claims and model-training agents against the real broker: nothing lost, expiry, poison, promotion."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests

from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import Worker, claim, consume, metric, poll, produce, put_demo_objects, start_broker

pytestmark = pytest.mark.integration


def _claim_ids(records: list[dict], prefix: str) -> list[str]:
    return [r["value"]["claim"]["claim_id"] for r in records if str(r["value"]["claim"]["claim_id"]).startswith(prefix)]


def _dead_ids(records: list[dict], prefix: str) -> dict[str, str]:
    out = {}
    for r in records:
        raw = base64.b64decode(r["value"]["value_b64"])
        tag = raw.decode("utf-8", "replace")
        if prefix in tag:
            out[tag[tag.index(prefix) :].split('"')[0]] = r["value"]["error_type"]
    return out


def _assert_at_least_once(results: list[dict], got: list[str], valid: list[str], resent: set[str], exact: bool) -> None:
    """Every valid claim has a result; repeats (only after a rebalance) carry the same claim coordinates."""
    if exact:
        assert sorted(got) == sorted(valid), "without a rebalance every valid claim has exactly one result"
        return
    assert set(got) == set(valid), "a rebalance may repeat claims but never lose one"
    coords: dict[str, set] = {}
    for r in results:
        c = r["value"]["claim"]
        if c["claim_id"] in valid and c["claim_id"] not in resent:  # re-published claims get new coordinates
            coords.setdefault(c["claim_id"], set()).add((c["topic"], c["partition"], c["offset"]))
    assert all(len(v) == 1 for v in coords.values()), "a repeated claim is identifiable by its coordinates"


def test_burst_every_claim_gets_one_result_or_one_dead_letter(broker, worker):
    joined = worker.rebalances()
    run = f"burst-{uuid.uuid4().hex[:6]}"
    idents = [f"{run}-{i}" for i in range(5)]
    put_demo_objects(worker.var_dir / "objects", idents, seed=300)
    past = str(int(time.time() * 1000) - 60_000).encode()
    future = str(int(time.time() * 1000) + 600_000).encode()
    msgs, valid, poison, expired, unkeyed = [], [], {}, [], set()
    for n in range(200):
        ident = idents[n % len(idents)]
        cid = f"{run}-c{n}"
        headers = [("deadline_ms", future)] if n % 3 == 0 else None
        key = None if n % 17 == 0 else ident.encode()  # some unkeyed claims: repartitioned by identifier
        if key is None:
            unkeyed.add(cid)
        msgs.append((key, claim(ident, f"{ident}.parquet", claim_id=cid), headers))
        valid.append(cid)
    for n in range(10):
        cid = f"{run}-x{n}"
        msgs.append(
            (idents[0].encode(), claim(idents[0], f"{idents[0]}.parquet", claim_id=cid), [("deadline_ms", past)])
        )
        expired.append(cid)
    bad = {
        "notjson": b"{" + f'"claim_id": "{run}-p0"'.encode(),
        "nofields": json.dumps({"claim_id": f"{run}-p1"}).encode(),
        "missing": claim(idents[1], "nope.parquet", claim_id=f"{run}-p2"),
        "bucket": json.dumps(
            {"identifier": idents[1], "bucket": "other", "object_key": "x.parquet", "claim_id": f"{run}-p3"}
        ).encode(),
        "traversal": claim(idents[1], "../../etc/passwd", claim_id=f"{run}-p4"),
    }
    for i, value in enumerate(bad.values()):
        msgs.insert(40 * i + 1, (idents[1].encode(), value, None))
        poison[f"{run}-p{i}"] = value
    produce(broker.bootstrap, "inference-data", msgs)

    results = poll(
        lambda: (
            (r := consume(broker.bootstrap, "inference-results", None, timeout=30))
            and len(set(_claim_ids(r, run))) >= len(valid)
            and r
        ),
        timeout=120,
        interval=1,
    )
    got = _claim_ids(results, run)
    exact = worker.rebalances() == joined  # another group member (or a lost session) makes it at-least-once
    _assert_at_least_once(results, got, valid, unkeyed, exact)
    dead = poll(
        lambda: (
            len(d := _dead_ids(consume(broker.bootstrap, "flts-dead-letter", None, timeout=30), f"{run}-p"))
            >= len(poison)
            and d
        ),
        timeout=60,
        interval=1,
    )
    assert set(dead) == set(poison)
    assert dead[f"{run}-p2"] == "ObjectNotFound" and dead[f"{run}-p4"] == "InvalidObjectKey"
    assert not set(expired) & set(got) and not set(expired) & set(dead)
    assert metric(worker, 'flts_claims_total{outcome="expired"}') >= len(expired)
    assert metric(worker, 'flts_claims_total{outcome="repartitioned"}') >= 12

    one = next(r["value"] for r in results if r["value"]["claim"]["claim_id"] == valid[0])
    assert one["identifier"] == idents[0] and one["run_id"] and len(one["predictions"]) == 30
    # Results carry every trained quantile, per step, beside the point forecast.
    assert set(one["quantiles"]) == {"0.1", "0.5", "0.9"} and all(len(v) == 30 for v in one["quantiles"].values())
    low, high = one["quantiles"]["0.1"][0]["down"], one["quantiles"]["0.9"][0]["down"]
    assert low <= high
    assert one["claim"]["topic"] == "inference-data" and isinstance(one["claim"]["offset"], int)
    # Prediction logs: new objects per identifier and batch; together they hold every result exactly once.
    logged = []
    for path in (worker.var_dir / "objects" / "flts" / "inference-logs").glob(f"{run}-*/*/*/*.jsonl"):
        logged += [json.loads(line)["claim"]["claim_id"] for line in path.read_text().splitlines()]
    assert sorted(logged) == sorted(valid) if exact else set(logged) == set(valid)
    # The newest frame of each identifier is cached and serves cached forecasts, with the history kept
    # from its claims (one day of objects here: 720 rows of the first target).
    cached = requests.get(f"{worker.url}/predict/{idents[2]}", params={"quantiles": "0.9"}, timeout=10).json()
    assert cached["cached"] is True and list(cached["quantiles"]) == ["0.9"]
    history = requests.get(f"{worker.url}/frames/{idents[2]}", timeout=10).json()["history"]
    assert history["column"] == "down" and history["rows"] >= 720 and history["bytes"] < 21_000


def test_training_events_promote_and_reach_a_second_worker(tmp_path, trained):
    from flts_streams.forecasting import packaging
    from flts_streams.forecasting.pipeline import load_frame
    from flts_streams.forecasting.training import TrainConfig, train

    var_models, uri = trained
    tracking = f"sqlite:///{var_models / 'mlflow.db'}"
    broker = start_broker(tmp_path / "broker")
    objects = tmp_path / "objects"
    env = {
        "FLTS_MODEL__DEFAULT_URI": uri,
        "FLTS_MODEL__TRACKING_URI": tracking,
        "FLTS_STORAGE__URL": f"file://{objects}",
        "FLTS_MODEL__FOLLOW_INTERVAL_S": "0.5",
        "FLTS_STREAMING__OBSERVE_INTERVAL_S": "0.5",
    }
    a, b = Worker(tmp_path / "a", broker.url, env), Worker(tmp_path / "b", broker.url, env)
    ident = f"promo-{uuid.uuid4().hex[:6]}"
    try:
        a.start().wait_ready()
        b.start().wait_ready()
        put_demo_objects(objects, [ident], seed=400, days=2)
        produce(broker.bootstrap, "inference-data", [(ident.encode(), claim(ident, f"{ident}.parquet"), None)])
        poll(lambda: requests.get(f"{a.url}/predict/{ident}", timeout=10).status_code == 200, timeout=60)
        data = tmp_path / "train.csv"
        demo_frame(days=3, seed=401).to_csv(data, index=False)
        packaging.configure(tracking)
        packaging.ensure_experiment("flts-training", var_models / "mlartifacts")
        cfg = TrainConfig(epochs=1, hidden_size=16, members=1)
        # Logged, not registered: the worker that handles the event decides, registers and moves the alias.
        run_id, _ = packaging.log_model(train(load_frame(data, cfg.features), cfg), cfg, ident, data.name)
        produce(
            broker.bootstrap,
            "model-training",
            [
                (
                    ident.encode(),
                    json.dumps({"status": "RUNNING", "run_id": run_id, "identifier": ident}).encode(),
                    None,
                ),
                (ident.encode(), b"not an event", None),
                (
                    ident.encode(),
                    json.dumps(
                        {"status": "SUCCESS", "run_id": run_id, "identifier": ident, "model_type": "lstm"}
                    ).encode(),
                    None,
                ),
            ],
        )
        selected = poll(
            lambda: [
                m
                for m in consume(broker.bootstrap, "model-selected", None, timeout=30)
                if m["value"]["identifier"] == ident
            ],
            timeout=90,
            interval=1,
        )
        assert selected[0]["value"]["decision"] == "PROMOTED" and selected[0]["value"]["run_id"] == run_id
        body = {"identifier": ident, "data": _payload(), "inference_length": 5}

        def serves_new(w: Worker) -> bool:
            r = requests.post(f"{w.url}/predict", json=body, timeout=10).json()
            return r.get("run_id") == run_id and r.get("model_identifier") == ident and not r["fallback_model"]

        for w in (a, b):  # one promoted it, the other followed the champions table — no restart
            poll(lambda w=w: serves_new(w), timeout=60, interval=0.5)
        statuses = [metric(w, 'flts_training_events_total{status="RUNNING"}') for w in (a, b)]
        assert sum(statuses) == 1
        dead = consume(broker.bootstrap, "flts-dead-letter", 1, timeout=20)
        assert dead[0]["value"]["source"]["topic"] == "model-training"
        assert "flts_consumer_lag{" in requests.get(f"{a.url}/metrics", timeout=5).text
    finally:
        a.stop()
        b.stop()
        broker.stop()


def _payload() -> dict:
    df = demo_frame(days=1, seed=402, gaps=0, blanks=0).tail(30)
    return {c: df[c].tolist() for c in df.columns}


def test_publish_claims_command(broker, worker, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from flts_streams.core.settings import child_env

    data = tmp_path / "site.parquet"
    demo_frame(days=1, seed=500).to_parquet(data, index=False)
    tag = f"cli-{uuid.uuid4().hex[:6]}"
    env = child_env({"FLTS_BROKER_URL": broker.url, "FLTS_PATHS__VAR_DIR": str(worker.var_dir)}, inherit_flts=False)
    flts = str(Path(sys.executable).with_name("flts"))
    expired_before = metric(worker, 'flts_claims_total{outcome="expired"}')
    runs = [
        [
            flts,
            "publish-claims",
            "--data",
            str(data),
            "--identifiers",
            f"{tag}-a,{tag}-b",
            "--count",
            "20",
            "--key",
            "none",
            "--tag",
            tag,
            "--quiet",
        ],
        [
            flts,
            "publish-claims",
            "--object",
            f"claims/{tag}-a/site.parquet",
            "--identifiers",
            f"{tag}-a",
            "--count",
            "5",
            "--ttl-ms",
            "0",
            "--tag",
            f"{tag}x",
            "--quiet",
        ],
    ]
    for cmd in runs:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1])["failed"] == 0
    results = poll(
        lambda: (
            len(r := _claim_ids(consume(broker.bootstrap, "inference-results", None, timeout=30), f"{tag}-")) >= 20
            and r
        ),
        timeout=90,
        interval=1,
    )
    assert sorted(results) == sorted(f"{tag}-{n}" for n in range(20))
    poll(lambda: metric(worker, 'flts_claims_total{outcome="expired"}') >= expired_before + 5, timeout=60)
