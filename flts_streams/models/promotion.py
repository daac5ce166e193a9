"""Champion selection for model-training events: load, smoke-test, backtest, decide (no Faust here)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from flts_streams.core.errors import FltsError, InvalidInput
from flts_streams.core.schemas import Champion, TrainingEvent, parse_message
from flts_streams.forecasting import packaging
from flts_streams.forecasting.evaluation import validation_mae
from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.models.serving_rule import DEFAULT_KEY

log = logging.getLogger(__name__)
MAX_BACKTEST_ORIGINS = 256  # bounds the backtest to a few forwards of a small net


def decode_training_event(raw: bytes | None) -> TrainingEvent:
    """Parse a model-training value; errors name what is wrong."""
    return parse_message(TrainingEvent, raw, "model-training event")


@dataclass(frozen=True)
class Decision:
    """Outcome of evaluating one trained model against the identifier's champion."""

    identifier: str
    model_uri: str
    run_id: str
    promoted: bool
    reason: str
    candidate_mae: float | None = None
    champion_mae: float | None = None
    previous_uri: str | None = None

    def champion(self) -> Champion:
        """The champions-table value this decision installs."""
        return Champion(
            identifier=self.identifier,
            model_uri=self.model_uri,
            run_id=self.run_id,
            score=self.candidate_mae,
            decided_at=time.time(),
        )

    def message(self, event: TrainingEvent) -> bytes:
        """model-selected value: the decision plus the training event's fields."""
        return json.dumps(
            {
                "identifier": self.identifier,
                "run_id": self.run_id,
                "model_uri": self.model_uri,
                "model_type": event.model_type,
                "config_hash": event.config_hash,
                "operation": event.operation,
                "decision": "PROMOTED" if self.promoted else "REJECTED",
                "promoted": self.promoted,
                "reason": self.reason,
                "metric": "mae",
                "candidate_score": self.candidate_mae,
                "champion_score": self.champion_mae,
                "previous_model_uri": self.previous_uri,
                "decided_at": time.time(),
            }
        ).encode()


def model_uri_of(event: TrainingEvent) -> str:
    """The event's model URI, defaulting to the run's logged model."""
    return event.model_uri or f"runs:/{event.run_id}/model"


def smoke_test(candidate: Forecaster, frame: PreparedFrame) -> None:
    """One forecast must come out finite and shaped (H, targets)."""
    fc = candidate.forecast(frame.tail(candidate.spec.window))
    expected = (candidate.spec.horizon, len(candidate.spec.targets))
    if fc.values.shape != expected or not np.isfinite(fc.values).all():
        raise InvalidInput(
            f"smoke test failed: forecast shape {fc.values.shape} (want {expected}) or non-finite values"
        )


def backtest_mae(forecaster: Forecaster, frame: PreparedFrame) -> float:
    """Mean MAE of the first target over (at most MAX_BACKTEST_ORIGINS) rolling origins of the frame."""
    spec = forecaster.spec
    span = len(frame) - spec.window - spec.horizon + 1
    stride = max(1, -(-span // MAX_BACKTEST_ORIGINS))
    return validation_mae(forecaster, frame, spec.window, stride=stride)


def decide_by_backtest(
    identifier: str,
    uri: str,
    candidate: packaging.LoadedModel,
    champion: packaging.LoadedModel | None,
    frame: PreparedFrame | None,
    *,
    force: bool,
) -> Decision:
    """Promote when forced, when there is no champion, or when the candidate backtests better on ``frame``."""
    prev = champion.uri if champion else None
    if force:
        return Decision(identifier, uri, candidate.run_id, True, "forced (operation=promote)", previous_uri=prev)
    if champion is None:
        return Decision(identifier, uri, candidate.run_id, True, "no champion yet")
    if champion.run_id == candidate.run_id:
        return Decision(identifier, uri, candidate.run_id, False, "already the champion", previous_uri=prev)
    need = max(candidate.forecaster.spec.window, champion.forecaster.spec.window) + candidate.forecaster.spec.horizon
    if frame is None or len(frame) < need:
        have = 0 if frame is None else len(frame)
        return Decision(
            identifier,
            uri,
            candidate.run_id,
            False,
            f"no cached frame to backtest against the champion (have {have} rows, need {need})",
            previous_uri=prev,
        )
    new = backtest_mae(candidate.forecaster, frame)
    try:
        old = backtest_mae(champion.forecaster, frame)
    except (FltsError, ValueError) as exc:  # champion cannot read this frame any more: replace it
        return Decision(
            identifier, uri, candidate.run_id, True, f"champion unusable on cached frame ({exc})", new, None, prev
        )
    better = new < old
    verdict = "beats" if better else "does not beat"
    return Decision(
        identifier,
        uri,
        candidate.run_id,
        better,
        f"backtest MAE {new:.4g} {verdict} champion {old:.4g}",
        new,
        old,
        prev,
    )


def evaluate(
    event: TrainingEvent,
    champion: packaging.LoadedModel | None,
    frame: PreparedFrame | None,
    smoke_frame: Callable[[], PreparedFrame],
) -> Decision:
    """Load, smoke-test and decide for one SUCCESS event (blocking: run it in a thread)."""
    identifier = event.identifier or DEFAULT_KEY
    uri = model_uri_of(event)
    candidate = packaging.load(uri)
    usable = frame is not None and len(frame) >= candidate.forecaster.spec.window
    smoke_test(candidate.forecaster, frame if usable else smoke_frame())  # type: ignore[arg-type]
    return decide_by_backtest(identifier, uri, candidate, champion, frame, force=event.operation == "promote")


def set_registry_alias(prefix: str, alias: str, decision: Decision) -> str | None:
    """Point the identifier's registered model alias at the decided run (registering it if needed)."""
    if decision.identifier == DEFAULT_KEY:
        return None
    name = packaging.registered_name(prefix, decision.identifier)
    try:
        versions = MlflowClient().search_model_versions(f"name='{name}' and run_id='{decision.run_id}'")
        version = versions[0].version if versions else mlflow.register_model(decision.model_uri, name).version
        MlflowClient().set_registered_model_alias(name, alias, version)
    except MlflowException as exc:
        # The champions table is what workers follow; the registry alias is for humans and restarts.
        log.warning("registry alias not updated name=%s run_id=%s error=%s", name, decision.run_id, exc)
        return None
    return str(version)


def champion_from_table(raw: Any) -> Champion | None:
    """Decode a champions-table value (JSON bytes/str/dict); None when absent or unreadable."""
    if raw is None:
        return None
    try:
        return Champion.model_validate_json(raw) if isinstance(raw, (bytes, str)) else Champion.model_validate(raw)
    except ValidationError:
        log.warning("unreadable champions entry value=%r", raw)
        return None
