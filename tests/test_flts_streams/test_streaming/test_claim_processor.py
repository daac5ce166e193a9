"""Claim micro-batches: one outcome per claim, fetch once per object, results with coordinates, logs, retries."""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pytest

from flts_streams.core.errors import TransientError
from flts_streams.core.metrics import Metrics
from flts_streams.core.settings import Settings
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.forecasting.spec import FEATURES
from flts_streams.models.predictor import Predictor
from flts_streams.models.registry import ModelRegistry
from flts_streams.models.serving_rule import DEFAULT_KEY
from flts_streams.streaming.claim_messages import ClaimInput, Coordinates
from flts_streams.streaming.claim_objects import frame_from_object
from flts_streams.streaming.claim_processor import ClaimProcessor
from flts_streams.streaming.frame_codec import decode_frame
from flts_streams.streaming.object_store import LocalStore
from tests.test_flts_streams.helpers import model


class CountingStore(LocalStore):
    """A real local store that counts reads and can fail the first N of them transiently."""

    def __init__(self, root, fail_first: int = 0, error: Exception | None = None) -> None:
        super().__init__(root)
        self.gets: list[str] = []
        self.fail_first = fail_first
        self.error = error

    def get(self, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
        self.gets.append(key)
        if self.error is not None:
            raise self.error
        if len(self.gets) <= self.fail_first:
            raise TransientError("store down")
        return super().get(bucket, key, max_bytes)


def _parquet(days: int = 1, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    demo_frame(days=days, seed=seed).to_parquet(buf)
    return buf.getvalue()


def _claim(
    identifier: str, key: str, offset: int, *, msg_key: bytes | None = None, headers=None, **extra
) -> ClaimInput:
    value = json.dumps({"identifier": identifier, "object_key": key, "claim_id": f"c{offset}", **extra}).encode()
    return ClaimInput(
        value,
        identifier.encode() if msg_key is None else msg_key,
        headers or [],
        Coordinates("inference-data", 1, offset),
        time.time() - 0.5,
    )


@pytest.fixture
async def predictor(tmp_path):
    settings = Settings(paths={"var_dir": tmp_path / "var"})
    p = _predictor(settings)
    await p.start()
    p.registry.install(DEFAULT_KEY, model())
    yield p
    await p.stop()


def _predictor(settings: Settings) -> Predictor:
    metrics = Metrics()
    return Predictor(settings, metrics, ModelRegistry(settings, metrics))


async def _started(settings: Settings, default: LoadedModel) -> Predictor:
    """A started predictor serving ``default`` for every identifier (stop it when done)."""
    predictor = _predictor(settings)
    await predictor.start()
    predictor.registry.install(DEFAULT_KEY, default)
    return predictor


def _processor(tmp_path, predictor, store) -> ClaimProcessor:
    settings = Settings(paths={"var_dir": tmp_path / "var"}, streaming={"retry_backoff_s": 0.01})
    return ClaimProcessor(settings, store, predictor.metrics, predictor)


async def test_mixed_batch_gets_one_outcome_per_claim(tmp_path, predictor):
    store = CountingStore(tmp_path / "objects")
    store.put("flts", "a.parquet", _parquet(seed=1))
    store.put("flts", "b.parquet", _parquet(seed=2))
    past = str(int(time.time() * 1000) - 1000).encode()
    inputs = [
        _claim("A", "a.parquet", 10),
        ClaimInput(b"not json", b"A", [], Coordinates("inference-data", 1, 11), time.time()),
        _claim("A", "a.parquet", 12),
        _claim("B", "b.parquet", 13),
        _claim("A", "missing.parquet", 14),
        _claim("A", "a.parquet", 15, headers=[("deadline_ms", past)]),
        _claim("C", "a.parquet", 16, msg_key=b""),
        _claim("A", "a.parquet", 17, bucket="elsewhere"),
        _claim("A", "../etc/passwd", 18),
    ]
    batch = await _processor(tmp_path, predictor, store).process_batch(inputs)
    assert [o.status for o in batch.outcomes] == [
        "processed",
        "dead_lettered",
        "processed",
        "processed",
        "dead_lettered",
        "expired",
        "repartitioned",
        "dead_lettered",
        "dead_lettered",
    ]
    assert sorted(store.gets) == ["a.parquet", "b.parquet", "missing.parquet"]  # each object read once
    assert batch.outcomes[6].forward_key == b"C"
    first = json.loads(batch.outcomes[0].result)
    assert first["claim"] == {
        "topic": "inference-data",
        "partition": 1,
        "offset": 10,
        "claim_id": "c10",
        "bucket": None,
        "object_key": "a.parquet",
    }
    assert first["model_identifier"] == DEFAULT_KEY and first["fallback_model"] is True
    assert first["synthetic_model"] is False and "no model is trained for 'A'" in first["model_reason"]
    assert predictor.metrics.fallbacks.labels("default")._value.get() == 2  # one forecast per (identifier, object)
    assert len(first["predictions"]) == 30 and first["predictions"][0]["down"] > 1e6  # original units
    dead = json.loads(batch.outcomes[4].dead_letter)
    assert dead["error_type"] == "ObjectNotFound" and dead["source"]["offset"] == 14
    assert "not allowed" in json.loads(batch.outcomes[7].dead_letter)["error"]
    assert batch.frames["A"][0] == 2 and batch.frames["B"][0] == 3  # newest claim per identifier
    assert len(decode_frame(batch.frames["A"][1])) == 720
    logs = sorted((tmp_path / "objects" / "flts" / "inference-logs").rglob("*.jsonl"))
    assert [p.name for p in logs] == ["1-10.jsonl", "1-13.jsonl"]
    lines = logs[0].read_text().splitlines()
    assert [json.loads(x)["claim"]["offset"] for x in lines] == [10, 12]


async def test_transient_store_errors_are_retried_not_dead_lettered(tmp_path, predictor):
    store = CountingStore(tmp_path / "objects", fail_first=2)
    store.put("flts", "a.parquet", _parquet())
    batch = await _processor(tmp_path, predictor, store).process_batch([_claim("A", "a.parquet", 1)])
    assert [o.status for o in batch.outcomes] == ["processed"]
    assert len(store.gets) == 3
    assert predictor.metrics.claims.labels("retried")._value.get() == 2


async def test_a_chunk_stops_at_a_transient_error_and_its_objects_are_retried_one_by_one(tmp_path, predictor):
    # Objects are read in chunks, one thread call each (file://: one chunk); after a transient failure the rest
    # of the chunk is not tried (an outage costs one timeout), and every object is retried until it reads.
    store = CountingStore(tmp_path / "objects", fail_first=1)
    keys = [f"{name}.parquet" for name in "abcd"]
    for key in keys:
        store.put("flts", key, _parquet(seed=len(key)))
    batch = await _processor(tmp_path, predictor, store).process_batch(
        [_claim(key[0].upper(), key, i) for i, key in enumerate(keys)]
    )
    assert [o.status for o in batch.outcomes] == ["processed"] * 4
    assert store.gets == ["a.parquet", *keys]  # the first failed; b, c, d waited for the retries
    assert predictor.metrics.claims.labels("retried")._value.get() == 1


@pytest.mark.parametrize("threads", [1, 3, 8])
async def test_objects_read_in_chunks_each_once_and_each_claim_gets_its_own(tmp_path, predictor, threads):
    store = CountingStore(tmp_path / "objects")
    keys = [f"o{i}.parquet" for i in range(7)]
    for i, key in enumerate(keys):
        store.put("flts", key, _parquet(seed=i))
    settings = Settings(
        paths={"var_dir": tmp_path / "var"}, streaming={"retry_backoff_s": 0.01, "object_concurrency": threads}
    )
    claims = [_claim(f"S{i % 3}", key, i) for i, key in enumerate(keys)]
    batch = await ClaimProcessor(settings, store, predictor.metrics, predictor).process_batch(claims)
    assert sorted(store.gets) == keys
    results = [json.loads(o.result) for o in batch.outcomes]
    assert [r["claim"]["object_key"] for r in results] == keys
    logs = sorted(str(p) for p in (tmp_path / "objects" / "flts").rglob("*.jsonl"))
    assert len(logs) == 3  # one prediction log per identifier, written in chunks too


async def test_unexpected_errors_dead_letter_instead_of_escaping(tmp_path, predictor):
    store = CountingStore(tmp_path / "objects", error=RuntimeError("boom"))
    batch = await _processor(tmp_path, predictor, store).process_batch([_claim("A", "a.parquet", 1)])
    assert batch.outcomes[0].status == "dead_lettered"
    assert "RuntimeError: boom" in json.loads(batch.outcomes[0].dead_letter)["error"]


async def test_no_model_dead_letters_with_reason(tmp_path):
    settings = Settings(paths={"var_dir": tmp_path / "var"})
    bare = _predictor(settings)
    await bare.registry.start()
    await bare.start()
    try:
        await asyncio.wait_for(bare.registry.initial_load_done.wait(), 60)  # settled: no model will come
        store = CountingStore(tmp_path / "objects")
        store.put("flts", "a.parquet", _parquet())
        batch = await _processor(tmp_path, bare, store).process_batch([_claim("A", "a.parquet", 1)])
    finally:
        await bare.stop()
        await bare.registry.stop()
    dead = json.loads(batch.outcomes[0].dead_letter)
    assert dead["error_type"] == "NoModel" and "flts train --identifier A" in dead["error"]
    assert batch.frames == {}


async def test_claims_wait_while_models_load_instead_of_dead_lettering(tmp_path):
    loading = _predictor(Settings(paths={"var_dir": tmp_path / "var"}))  # initial load not done yet
    store = CountingStore(tmp_path / "objects")
    store.put("flts", "a.parquet", _parquet())
    task = asyncio.ensure_future(_processor(tmp_path, loading, store).process_batch([_claim("A", "a.parquet", 1)]))
    await asyncio.sleep(0.2)
    assert not task.done(), "a claim that arrives while models load must wait, not be dead-lettered"
    assert loading.metrics.claims.labels("retried")._value.get() >= 1
    loading.registry.install(DEFAULT_KEY, model())
    loading.registry.initial_load_done.set()
    batch = await asyncio.wait_for(task, 30)
    assert [o.status for o in batch.outcomes] == ["processed"]


async def test_oversized_poison_is_dead_lettered_small_with_the_original_stored(tmp_path, predictor):
    """An 800 KB junk value inline (base64) exceeded the producer's limit and cost its whole micro-batch."""
    store = CountingStore(tmp_path / "objects")
    store.put("flts", "a.parquet", _parquet())
    junk = bytes(range(256)) * 3125  # 800,000 bytes, not JSON
    big_key = b"k" * 1_000_000
    inputs = [
        _claim("A", "a.parquet", 1),
        ClaimInput(junk, big_key, [], Coordinates("inference-data", 2, 7), time.time()),
        _claim("A", "a.parquet", 3, claim_id="x" * 900_000),
        _claim("A", "a.parquet", 4),
    ]
    batch = await _processor(tmp_path, predictor, store).process_batch(inputs)
    assert [o.status for o in batch.outcomes] == ["processed", "dead_lettered", "dead_lettered", "processed"]
    dead = json.loads(batch.outcomes[1].dead_letter)
    assert len(batch.outcomes[1].dead_letter) < 100_000 and dead["truncated"] is True and dead["value_size"] == 800_000
    assert dead["original"] == {
        "bucket": "flts",
        "value_object": "dead-letters/inference-data/2-7.value",
        "key_object": "dead-letters/inference-data/2-7.key",
    }
    assert store.get("flts", dead["original"]["value_object"]) == junk
    assert store.get("flts", dead["original"]["key_object"]) == big_key
    too_long = json.loads(batch.outcomes[2].dead_letter)
    assert too_long["error_type"] == "SchemaError" and "claim_id" in too_long["error"]
    assert len(batch.outcomes[2].dead_letter) < 100_000


async def test_the_table_keeps_only_the_models_columns_and_refuses_a_frame_above_the_record_limit(tmp_path, predictor):
    store = CountingStore(tmp_path / "objects")
    wide = demo_frame(days=1, seed=4)
    for i in range(200):
        wide[f"extra_{i}"] = 1.0
    buf = io.BytesIO()
    wide.to_parquet(buf)
    store.put("flts", "wide.parquet", buf.getvalue())
    batch = await _processor(tmp_path, predictor, store).process_batch([_claim("W", "wide.parquet", 1)])
    assert batch.outcomes[0].status == "processed"
    assert decode_frame(batch.frames["W"][1]).columns == FEATURES  # not the 200 extra columns
    small = ClaimProcessor(
        Settings(paths={"var_dir": tmp_path / "var"}), store, predictor.metrics, predictor, max_record_bytes=10_000
    )
    refused = await small.process_batch([_claim("W", "wide.parquet", 2)])
    assert refused.outcomes[0].status == "dead_lettered" and refused.frames == {}
    assert "record limit" in json.loads(refused.outcomes[0].dead_letter)["error"]


def _two_day_objects(tmp_path, seed: int):
    """A store holding two consecutive days of demo data as d1.parquet and d2.parquet; the store and the data."""
    store = CountingStore(tmp_path / "objects")
    two_days = demo_frame(days=2, seed=seed, gaps=0, blanks=0)
    for name, part in (("d1", two_days.iloc[:720]), ("d2", two_days.iloc[720:])):
        buf = io.BytesIO()
        part.to_parquet(buf)
        store.put("flts", f"{name}.parquet", buf.getvalue())
    return store, two_days


async def test_each_claim_extends_the_identifiers_kept_history(tmp_path):
    from flts_streams.streaming.target_history import decode_history

    settings = Settings(paths={"var_dir": tmp_path / "var"}, streaming={"retry_backoff_s": 0.01})
    predictor = await _started(settings, model(history_days=1, quantiles=(0.1, 0.9)))
    store, two_days = _two_day_objects(tmp_path, seed=4)
    kept: dict[str, bytes] = {}
    processor = ClaimProcessor(settings, store, predictor.metrics, predictor, history_of=kept.get)
    try:
        first = await processor.process_batch([_claim("A", "d1.parquet", 1)])
        kept.update({k: v for k, (_, v) in first.histories.items()})
        second = await processor.process_batch([_claim("A", "d2.parquet", 2)])
    finally:
        await predictor.stop()
    assert len(decode_history(kept["A"]).values) == 720
    history = decode_history(second.histories["A"][1])
    # A 1-day model keeps one day: the second object's rows, continuing the first's.
    np.testing.assert_array_equal(history.values, two_days["down"].to_numpy(np.float32)[720:])
    result = json.loads(second.outcomes[0].result)
    assert list(result["quantiles"]) == ["0.1", "0.9"] and len(result["quantiles"]["0.9"]) == 30


async def test_in_a_burst_each_claim_sees_the_earlier_claims_of_its_site(tmp_path, monkeypatch):
    settings = Settings(paths={"var_dir": tmp_path / "var"}, streaming={"retry_backoff_s": 0.01})
    predictor = await _started(settings, model(history_days=2))
    store, two_days = _two_day_objects(tmp_path, seed=5)
    seen: dict[float, int] = {}
    real = predictor.predict

    async def spy(identifier, frame_for, horizon, source="http", timeout=None, *, quantiles=None, history=None):
        spec = (await predictor.registry.resolve(identifier))[0].forecaster.spec
        series = history(spec)
        seen[float(series[-1])] = len(series)  # keyed by the last value: which object this forecast was for
        return await real(identifier, frame_for, horizon, source, timeout, quantiles=quantiles, history=history)

    monkeypatch.setattr(predictor, "predict", spy)
    processor = ClaimProcessor(settings, store, predictor.metrics, predictor)
    try:
        batch = await processor.process_batch([_claim("A", "d1.parquet", 1), _claim("A", "d2.parquet", 2)])
    finally:
        await predictor.stop()
    assert [o.status for o in batch.outcomes] == ["processed", "processed"]
    down = two_days["down"].to_numpy(np.float32)
    assert seen == {float(down[719]): 720, float(down[-1]): 1440}  # the second saw both days


async def test_a_later_claim_scores_the_forecast_of_an_earlier_one(tmp_path):
    from flts_streams.streaming.live_accuracy import decode_accuracy

    settings = Settings(paths={"var_dir": tmp_path / "var"}, streaming={"retry_backoff_s": 0.01})
    predictor = await _started(settings, model(quantiles=(0.1, 0.5, 0.9)))
    store, two_days = _two_day_objects(tmp_path, seed=6)
    kept: dict[str, bytes] = {}
    processor = ClaimProcessor(settings, store, predictor.metrics, predictor, accuracy_of=kept.get)
    steps = predictor.metrics.live_steps
    try:
        first = await processor.process_batch([_claim("A", "d1.parquet", 1)])
        kept.update({k: v for k, (_, v) in first.accuracy.items()})
        issued = decode_accuracy(kept["A"]).forecasts[0]
        second = await processor.process_batch([_claim("A", "d2.parquet", 2)])
        kept.update({k: v for k, (_, v) in second.accuracy.items()})
        again = await processor.process_batch([_claim("A", "d2.parquet", 2)])  # redelivered: scores nothing more
    finally:
        await predictor.stop()
    acc = decode_accuracy(second.accuracy["A"][1])
    assert [f.scored for f in acc.forecasts] == [30, 0]  # d2 covers all 30 steps of d1's forecast
    down = two_days["down"].to_numpy(np.float64)
    expected_mae = np.abs(down[720:750] - issued.values[:, 0]).mean()
    rows = {r["horizon"]: r for r in acc.summary(hours=24)}
    assert sorted(rows) == ["1-10", "11-20", "21-30"]
    mae = sum(r["mae"]["down"] * r["steps"] for r in rows.values()) / 30
    assert mae == pytest.approx(expected_mae, rel=1e-5)
    persistence = np.abs(down[720:750] - down[719]).mean()
    assert sum(r["persistence_mae"]["down"] * r["steps"] for r in rows.values()) / 30 == pytest.approx(
        persistence, rel=1e-5
    )
    assert all(r["coverage"] is not None for r in rows.values())
    run = issued.run_id
    assert sum(steps.labels(run, b)._value.get() for b in rows) == 30
    assert decode_accuracy(again.accuracy["A"][1]).summary(24) == acc.summary(24)
    assert sum(steps.labels(run, b)._value.get() for b in rows) == 30


async def test_drift_publishes_one_training_request_per_cool_down(tmp_path):
    import json as _json

    settings = Settings(
        paths={"var_dir": tmp_path / "var"},
        streaming={"retry_backoff_s": 0.01},
        accuracy={"drift_min_steps": 30, "drift_mae_factor": 2.0},
    )
    predictor = await _started(settings, model(metrics={"val_mae_down": 1.0}))  # any live MAE is far above 1
    store, _ = _two_day_objects(tmp_path, seed=7)
    kept: dict[str, bytes] = {}
    processor = ClaimProcessor(settings, store, predictor.metrics, predictor, accuracy_of=kept.get)
    requests = []
    try:
        for n, name in enumerate(["d1", "d2", "d2"]):
            batch = await processor.process_batch([_claim("A", f"{name}.parquet", n)])
            kept.update({k: v for k, (_, v) in batch.accuracy.items()})
            requests.append(batch.training_requests)
    finally:
        await predictor.stop()
    assert requests[0] == [] and requests[2] == []  # nothing scored yet; then within the cool-down
    ((identifier, message),) = requests[1]
    body = _json.loads(message)
    assert identifier == "A" and body["kind"] == "mae_above_validation" and body["run_id"] == "run-0"
    assert predictor.metrics.training_requests.labels("mae_above_validation")._value.get() == 1


async def test_a_failure_of_live_accuracy_costs_no_claim_its_result(tmp_path, monkeypatch):
    from flts_streams.streaming import live_accuracy

    def broken(self, stamps, actuals):
        raise FloatingPointError("scoring broke")

    monkeypatch.setattr(live_accuracy.LiveAccuracy, "score", broken)
    settings = Settings(paths={"var_dir": tmp_path / "var"}, streaming={"retry_backoff_s": 0.01})
    predictor = await _started(settings, model())
    store, _ = _two_day_objects(tmp_path, seed=8)
    processor = ClaimProcessor(settings, store, predictor.metrics, predictor, accuracy_of={}.get)
    try:
        batch = await processor.process_batch([_claim("A", "d1.parquet", 1)])
    finally:
        await predictor.stop()
    assert [o.status for o in batch.outcomes] == ["processed"] and batch.accuracy == {}


async def test_a_held_cached_forecast_of_another_model_is_remembered_and_scored_by_the_next_claim(tmp_path):
    from flts_streams.streaming.live_accuracy import HeldForecasts, decode_accuracy, issued_from_frame

    settings = Settings(paths={"var_dir": tmp_path / "var"}, streaming={"retry_backoff_s": 0.01})
    predictor = await _started(settings, model(seed=1))
    store, _ = _two_day_objects(tmp_path, seed=9)
    kept: dict[str, bytes] = {}
    held = HeldForecasts(per_identifier=4)
    processor = ClaimProcessor(
        settings, store, predictor.metrics, predictor, accuracy_of=kept.get, held_forecasts=held.take
    )
    try:
        first = await processor.process_batch([_claim("A", "d1.parquet", 1)])
        kept.update({k: v for k, (_, v) in first.accuracy.items()})
        # GET /predict/{id} answered from d1 by a newer model (another run) before the next claim.
        frame = frame_from_object(store.get("flts", "d1.parquet"), "d1.parquet", FEATURES)
        newer = model(seed=2)
        forecast = newer.forecaster.forecast(frame)
        held.add("A", issued_from_frame(forecast, newer.run_id, frame))
        second = await processor.process_batch([_claim("A", "d2.parquet", 2)])
    finally:
        await predictor.stop()
    acc = decode_accuracy(second.accuracy["A"][1])
    assert sorted((f.run_id, f.scored) for f in acc.forecasts) == [("run-1", 0), ("run-1", 30), ("run-2", 30)]
    assert {r["run_id"] for r in acc.summary(24)} == {"run-1", "run-2"}
    assert held.take("A") == []
