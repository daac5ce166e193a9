"""The drift detector: live MAE against the model's validation MAE, skill against persistence, a cool-down."""

from __future__ import annotations

import numpy as np

from flts_streams.core.settings import AccuracySettings
from flts_streams.streaming.drift import cooled_down, detect, training_request, validation_mae
from flts_streams.streaming.live_accuracy import BIN_NS, IssuedForecast, LiveAccuracy
from tests.test_flts_streams.helpers import model

STEP = 120 * 1_000_000_000
ORIGIN = 2_000 * BIN_NS
RULE = AccuracySettings(drift_window_h=6, drift_min_steps=20, drift_mae_factor=2.0, drift_cooldown_s=3600)


def _book(forecast: float, actual: float, last: float = 10.0, steps: int = 30, run_id: str = "run-a") -> LiveAccuracy:
    """A book whose one forecast (all ``forecast``) was scored against ``actual`` at every step."""
    acc = LiveAccuracy(("down",))
    values = np.full((steps, 1), forecast, dtype=np.float32)
    acc.issue(IssuedForecast(run_id, ORIGIN, STEP, values, np.array([last], np.float32)), keep=4)
    stamps = ORIGIN + (np.arange(steps, dtype=np.int64) + 1) * STEP
    acc.score(stamps, np.full((steps, 1), actual, dtype=np.float32))
    return acc


def test_live_mae_far_above_the_validation_mae_is_drift():
    found = detect(_book(forecast=10.0, actual=13.0, last=13.0), "run-a", RULE, reference_mae=1.0)
    assert found is not None and found.kind == "mae_above_validation"
    assert "live MAE 3 " in found.reason and found.figures["validation_mae"] == 1.0


def test_skill_below_persistence_is_drift_without_a_validation_mae():
    found = detect(_book(forecast=16.0, actual=12.0, last=11.0), "run-a", RULE, reference_mae=None)
    assert found is not None and found.kind == "skill_below_persistence" and found.figures["skill"] == -3.0


def test_no_drift_when_the_model_does_well_has_too_few_steps_or_is_another_run():
    assert detect(_book(forecast=12.0, actual=12.5, last=10.0), "run-a", RULE, reference_mae=1.0) is None
    assert detect(_book(16.0, 12.0, steps=10), "run-a", RULE, None) is None  # 10 steps < drift_min_steps
    assert detect(_book(16.0, 12.0), "run-b", RULE, None) is None  # a retrained model starts afresh


def test_a_request_waits_for_the_cool_down():
    acc = _book(16.0, 12.0)
    assert cooled_down(acc, RULE, now=1000.0)
    acc.requested_at = 1000.0
    assert not cooled_down(acc, RULE, now=1000.0 + 3599) and cooled_down(acc, RULE, now=1000.0 + 3600)


def test_the_request_names_the_identifier_the_model_and_why():
    found = detect(_book(16.0, 12.0), "run-a", RULE, None)
    assert found is not None
    request = training_request("A", "run-a", found, now=5.0)
    assert (request["identifier"], request["run_id"], request["kind"]) == ("A", "run-a", "skill_below_persistence")
    assert request["figures"]["steps"] == 30 and request["requested_at"] == 5.0


def test_validation_mae_comes_from_the_training_metrics():
    assert validation_mae(model(metrics={"val_mae_down": 2.5}).forecaster.spec) == 2.5
    assert validation_mae(model().forecaster.spec) is None
