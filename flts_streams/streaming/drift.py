"""The drift detector: whether an identifier's live accuracy calls for retraining, and the request to publish."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from flts_streams.core.settings import AccuracySettings
from flts_streams.forecasting.spec import ModelSpec
from flts_streams.streaming.live_accuracy import LiveAccuracy, figures, first_target, skill


@dataclass(frozen=True)
class Drift:
    """Why an identifier's model should be retrained, with the figures that say so."""

    kind: str  # "mae_above_validation" or "skill_below_persistence"
    reason: str
    figures: dict[str, Any]


def validation_mae(spec: ModelSpec) -> float | None:
    """The model's MAE of its first target on its validation split at training time (None: not recorded)."""
    value = spec.metrics.get(f"val_mae_{spec.targets[0]}")
    return float(value) if value else None


def detect(acc: LiveAccuracy, run_id: str, rule: AccuracySettings, reference_mae: float | None) -> Drift | None:
    """Drift of ``run_id``'s forecasts over the rule's window of scored steps, None when there is none (yet)."""
    rows = [row for (run, _bucket), row in acc.window(rule.drift_window_h).items() if run == run_id]
    if not rows:
        return None
    total = np.sum(rows, axis=0)
    steps, mae, persistence_mae = first_target(total, len(acc.targets))
    if steps < rule.drift_min_steps:
        return None
    seen = figures(total, acc.targets)
    relative = skill(mae, persistence_mae)
    window = f"over the last {rule.drift_window_h:g} h ({steps} steps)"
    if reference_mae and mae > rule.drift_mae_factor * reference_mae:
        return Drift(
            "mae_above_validation",
            f"live MAE {mae:.4g} {window} is above {rule.drift_mae_factor:g} x the model's validation MAE "
            f"{reference_mae:.4g}",
            {**seen, "validation_mae": reference_mae},
        )
    if relative is not None and relative < rule.drift_skill_below:
        return Drift(
            "skill_below_persistence",
            f"live skill {relative:.3f} {window} is below {rule.drift_skill_below:g}: persistence forecasts better",
            seen,
        )
    return None


def cooled_down(acc: LiveAccuracy, rule: AccuracySettings, now: float | None = None) -> bool:
    """Whether the identifier's last training request is older than the cool-down."""
    now = time.time() if now is None else now
    return acc.requested_at is None or now - acc.requested_at >= rule.drift_cooldown_s


def training_request(identifier: str, run_id: str, drift: Drift, now: float) -> dict[str, Any]:
    """The training-requests message (key: the identifier)."""
    return {
        "identifier": identifier,
        "run_id": run_id,
        "kind": drift.kind,
        "reason": drift.reason,
        "figures": drift.figures,
        "requested_at": now,
    }
