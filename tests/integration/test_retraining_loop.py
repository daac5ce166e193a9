"""The retraining loop end to end: traffic shifts, live accuracy drops, the detector asks once, the trainer
retrains from the stored claim objects, the new model is promoted and served, its live accuracy holds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests

from flts_streams.core.settings import child_env
from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import (
    Worker,
    claim,
    claims_env,
    consume,
    poll,
    produce,
    put_object,
    start_broker,
)

pytestmark = pytest.mark.integration
FLTS = str(Path(sys.executable).with_name("flts"))
SPAN, STEP = 1440, 90  # each claim object holds the last two days, one claim every three hours
DRIFT = {  # judge once four forecasts are scored; one request an hour at most
    "FLTS_ACCURACY__DRIFT_MIN_STEPS": "120",
    "FLTS_ACCURACY__DRIFT_WINDOW_H": "24",
    "FLTS_ACCURACY__DRIFT_MAE_FACTOR": "2",
    "FLTS_ACCURACY__DRIFT_COOLDOWN_S": "3600",
}


class Trainer:
    """`flts trainer` in a subprocess, logging to a file."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "trainer.log"
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [FLTS, "trainer"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _setup(tmp_path, trained, retraining: dict[str, str]):
    broker = start_broker(tmp_path / "broker")
    objects = tmp_path / "objects"
    env = claims_env(trained, objects) | DRIFT
    worker = Worker(tmp_path / "worker", broker.url, env)
    trainer_env = child_env(
        {
            **env,
            **retraining,
            "FLTS_BROKER_URL": broker.url,
            "FLTS_EMBEDDED__ENABLED": "true",
            "FLTS_PATHS__VAR_DIR": str(tmp_path / "trainer"),
            "FLTS_TRAINING__TORCH_THREADS": "1",
        },
        inherit_flts=False,
    )
    return broker, objects, worker, trainer_env


def _shifted_chunks(objects: Path, identifier: str, count: int, factor: float = 3.0) -> list[str]:
    """Claim objects of traffic unlike what the served model was trained on: ``factor`` times the demo
    level, in a smooth daily wave (the demo data is noisy enough to hide a model's quality in its noise).

    As operators send them: each holds the last two days, three hours on from the one before.
    """
    frame = demo_frame(days=(SPAN + count * STEP) // 720 + 1, seed=61, gaps=0, blanks=0)
    day_phase = 2 * np.pi * np.arange(len(frame)) / 720
    wave = 1 + 0.6 * np.sin(day_phase) + 0.02 * np.random.default_rng(61).standard_normal(len(frame))
    for column in ("down", "up"):
        frame[column] = factor * frame[column].mean() * wave
    keys = []
    for n in range(count):
        key = f"{identifier}/upto-{n:02d}.parquet"
        put_object(objects, key, frame.iloc[n * STEP : n * STEP + SPAN])
        keys.append(key)
    return keys


def _publish_in_order(broker, worker: Worker, identifier: str, keys: list[str], tag: str) -> list[dict]:
    """One claim per object, each sent once the previous one has its result (so each scores the one before)."""
    results = []
    for n, key in enumerate(keys):
        claim_id = f"{tag}-{n}"
        produce(
            broker.bootstrap, "inference-data", [(identifier.encode(), claim(identifier, key, claim_id=claim_id), None)]
        )
        results.append(poll(lambda cid=claim_id: _result(broker, cid), timeout=120, interval=0.5))
    return results


def _first(broker, topic: str, match: Callable[[dict], bool]) -> dict | None:
    """The first message value on ``topic`` that ``match`` accepts; None while there is none."""
    return next((m["value"] for m in consume(broker.bootstrap, topic, None, timeout=20) if match(m["value"])), None)


def _result(broker, claim_id: str) -> dict | None:
    return _first(broker, "inference-results", lambda v: v["claim"]["claim_id"] == claim_id)


def _accuracy(worker: Worker, identifier: str) -> dict:
    return requests.get(f"{worker.url}/accuracy/{identifier}", timeout=10).json()


def _mae_of(report: dict, run_id: str) -> float:
    rows = [r for r in report["windows"]["24h"] if r["run_id"] == run_id]
    return sum(r["mae"]["down"] * r["steps"] for r in rows) / sum(r["steps"] for r in rows)


def test_drift_retrains_promotes_and_the_new_model_serves(tmp_path, trained):
    identifier = f"shift-{uuid.uuid4().hex[:6]}"
    retraining = {"FLTS_RETRAINING__MIN_ROWS": "1440", "FLTS_RETRAINING__EPOCHS": "10"}
    broker, objects, worker, trainer_env = _setup(tmp_path, trained, retraining)
    keys = _shifted_chunks(objects, identifier, 10)
    trainer = Trainer(tmp_path / "trainer", trainer_env)
    try:
        worker.start().wait_ready()
        before = _publish_in_order(broker, worker, identifier, keys[:6], "before")
        old_run = before[0]["run_id"]
        assert before[0]["model_identifier"] == "*"  # the default model serves the new identifier

        # The detector fires once the shifted traffic has been scored; the request names the model and why.
        (request,) = poll(lambda: consume(broker.bootstrap, "training-requests", None, timeout=10), timeout=60)
        assert request["key"] == identifier.encode()
        body = request["value"]
        assert body["identifier"] == identifier and body["run_id"] == old_run
        assert body["kind"] in ("mae_above_validation", "skill_below_persistence") and body["reason"]
        old_mae = _mae_of(_accuracy(worker, identifier), old_run)

        # The trainer retrains from the claim objects and announces it; the workers' promotion decides.
        def promoted() -> dict | None:
            return _first(broker, "model-selected", lambda v: v.get("identifier") == identifier and v.get("promoted"))

        decision = poll(promoted, timeout=240, interval=2)
        new_run = decision["run_id"]
        assert new_run != old_run, trainer.log()

        # Every later claim is answered by the new model, and its live accuracy is scored apart.
        after = _publish_in_order(broker, worker, identifier, keys[6:], "after")
        assert after[-1]["run_id"] == new_run and after[-1]["model_identifier"] == identifier
        new_mae = _mae_of(_accuracy(worker, identifier), new_run)
        assert new_mae < old_mae / 2, (new_mae, old_mae)  # measured: 16x lower

        # One request for the identifier: the cool-down holds while the old model's figures stay bad.
        assert len(consume(broker.bootstrap, "training-requests", None, timeout=10)) == 1
        assert consume(broker.bootstrap, "flts-dead-letter", None, timeout=10) == []
        claim_ids = {r["value"]["claim"]["claim_id"] for r in consume(broker.bootstrap, "inference-results", None)}
        assert {f"before-{n}" for n in range(6)} | {f"after-{n}" for n in range(4)} <= claim_ids
    finally:
        trainer.stop()
        worker.stop()
        broker.stop()


def test_a_failed_retraining_leaves_the_old_model_serving(tmp_path, trained):
    identifier = f"fail-{uuid.uuid4().hex[:6]}"
    broker, objects, worker, trainer_env = _setup(tmp_path, trained, {"FLTS_RETRAINING__MIN_ROWS": "100000"})
    keys = _shifted_chunks(objects, identifier, 8)
    trainer = Trainer(tmp_path / "trainer", trainer_env)
    try:
        worker.start().wait_ready()
        first = _publish_in_order(broker, worker, identifier, keys[:6], "first")
        old_run = first[0]["run_id"]

        event = poll(lambda: _first(broker, "model-training", lambda v: v.get("identifier") == identifier), timeout=120)
        assert event["status"] == "FAILED" and "100000 needed to retrain" in event["reason"], trainer.log()
        later = _publish_in_order(broker, worker, identifier, keys[6:], "later")
        assert all(r["run_id"] == old_run and r["model_identifier"] == "*" for r in later)
        assert not [m for m in consume(broker.bootstrap, "model-selected", None, timeout=10)
                    if m["value"].get("identifier") == identifier]  # fmt: skip
        assert consume(broker.bootstrap, "flts-dead-letter", None, timeout=10) == []
    finally:
        trainer.stop()
        worker.stop()
        broker.stop()


def test_a_malformed_request_is_dead_lettered_and_the_trainer_goes_on(tmp_path, trained):
    broker, objects, worker, trainer_env = _setup(tmp_path, trained, {"FLTS_RETRAINING__MIN_ROWS": "100000"})
    trainer = Trainer(tmp_path / "trainer", trainer_env)
    try:
        produce(broker.bootstrap, "training-requests", [(b"x", b"not json", None)])
        produce(broker.bootstrap, "training-requests", [(b"y", json.dumps({"identifier": "y"}).encode(), None)])
        (letter,) = poll(lambda: consume(broker.bootstrap, "flts-dead-letter", None, timeout=10), timeout=60)
        assert letter["value"]["source"]["topic"] == "training-requests"
        event = poll(lambda: consume(broker.bootstrap, "model-training", None, timeout=10), timeout=60)[0]["value"]
        assert event["status"] == "FAILED" and "no processed claims of 'y'" in event["reason"]
    finally:
        trainer.stop()
        broker.stop()
