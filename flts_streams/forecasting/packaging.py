"""Log trained forecasters to MLflow, register them and manage the champion alias."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from flts_streams.core.errors import FltsError, ModelLoadError, RegistryUnavailable
from flts_streams.forecasting.evaluation import validation_mae
from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.pyfunc import SPEC_ARTIFACT, WEIGHTS_ARTIFACT, FltsForecastModel
from flts_streams.forecasting.training import TrainConfig, TrainResult

log = logging.getLogger(__name__)
MODEL_NAME = "model"  # artifact name inside a run: runs:/<run_id>/model


@dataclass(frozen=True)
class LoadedModel:
    """A forecaster with the identity of the MLflow model it came from."""

    forecaster: Forecaster
    uri: str
    run_id: str


@dataclass(frozen=True)
class Registration:
    """Outcome of logging one training run."""

    run_id: str
    model_uri: str
    registered_name: str
    version: str
    promoted: bool
    reason: str
    model_type: str  # the served network's kind ("mlp" when distilled from LSTM members), not the members'


def configure(tracking_uri: str) -> None:
    """Point MLflow at the tracking store (also used as the registry)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def ensure_experiment(name: str, artifact_root: Path | None) -> str:
    """Create (once) and select the experiment; local stores keep artifacts under var/."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = artifact_root.as_uri() if artifact_root else None
        exp_id = client.create_experiment(name, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def log_model(result: TrainResult, cfg: TrainConfig, identifier: str, data_name: str) -> tuple[str, str]:
    """Log params, history, metrics and the pyfunc model in a new run; returns (run_id, model URI)."""
    spec = result.forecaster.spec
    with mlflow.start_run(run_name=f"{identifier}-{spec.kind}") as run:
        mlflow.set_tags({"identifier": identifier, "model_type": spec.kind, "data": data_name})
        mlflow.log_params(
            {k: str(v) for k, v in vars(cfg).items()} | {"identifier": identifier, "cadence_s": spec.cadence_s}
        )
        for row in result.history:
            mlflow.log_metrics({"train_loss": row["train_loss"], "val_loss": row["val_loss"]}, step=int(row["epoch"]))
        mlflow.log_metrics(result.val_metrics)
        with tempfile.TemporaryDirectory() as tmp:
            spec_path, weights_path = Path(tmp, "spec.json"), Path(tmp, "weights.pt")
            final_spec = dataclasses.replace(spec, metrics=_summary(result.val_metrics))
            spec_path.write_text(final_spec.to_json())
            torch.save(result.forecaster.net.state_dict(), weights_path)
            mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=FltsForecastModel(),
                artifacts={SPEC_ARTIFACT: str(spec_path), WEIGHTS_ARTIFACT: str(weights_path)},
                pip_requirements=["flts-streams", "torch==2.13.0", "pandas", "numpy"],
            )
        return run.info.run_id, f"runs:/{run.info.run_id}/{MODEL_NAME}"


def _summary(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if "_h" not in k}


# MLflow error codes that mean the URI itself is wrong. Anything else (INTERNAL_ERROR is what an
# unreachable tracking server gives, after MLflow's own retries) may pass: the load is retried.
PERMANENT_ERROR_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST", "NOT_FOUND"})


def load(uri: str) -> LoadedModel:
    """Load a forecaster by MLflow URI (runs:/..., models:/name@alias, models:/name/1).

    Raises ModelLoadError for a model that cannot work (retrying will not help) and
    RegistryUnavailable when the registry or artifact store could not be reached.
    """
    try:
        model = mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        if exc.error_code in PERMANENT_ERROR_CODES:
            raise ModelLoadError(f"cannot load model {uri!r}: {exc}") from exc
        raise RegistryUnavailable(f"model registry unavailable loading {uri!r}: {exc}") from exc
    except FileNotFoundError as exc:
        raise ModelLoadError(f"cannot load model {uri!r}: {exc}") from exc
    except OSError as exc:  # connection errors of the artifact store
        raise RegistryUnavailable(f"artifact store unavailable loading {uri!r}: {exc}") from exc
    wrapped = model.unwrap_python_model()
    if not isinstance(wrapped, FltsForecastModel):
        raise ModelLoadError(f"{uri!r} is not an flts forecaster")
    return LoadedModel(wrapped.forecaster, uri, model.metadata.run_id or "")


def registered_name(prefix: str, identifier: str) -> str:
    """Registry name of an identifier's models."""
    return f"{prefix}{identifier}"


def champion_uri(name: str, alias: str) -> str | None:
    """URI of the aliased version, or None when there is none."""
    try:
        MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return f"models:/{name}@{alias}"


def register(
    run_id: str,
    model_uri: str,
    name: str,
    alias: str,
    frame: PreparedFrame | Sequence[PreparedFrame],
    val_start: int | Sequence[int],
    candidate: Forecaster,
    *,
    force: bool = False,
    decide: bool = True,
    rival: str | None = None,
) -> Registration:
    """Register the run's model and move the alias when there is no champion, it wins, or force.

    With ``decide`` False the alias stays: the workers' backtest decides on the model-training event.
    Several frames (a global model): the validation MAEs of all of them, summed, decide. ``rival``: the
    model that answers when ``name`` has no champion (the global one): the first champion must beat it.
    """
    version = mlflow.register_model(model_uri, name).version
    if decide:
        current = champion_uri(name, alias)
        rival_uri = champion_uri(rival, alias) if current is None and rival and rival != name else None
        promoted, reason = decide_by_validation_mae(current or rival_uri, frame, val_start, candidate, force)
        if rival_uri is not None and not force:
            reason += f" (the champion of {rival}, which answers it while it has none)"
    else:
        promoted, reason = False, "left to the workers' backtest (model-training event)"
    if promoted:
        MlflowClient().set_registered_model_alias(name, alias, version)
    log.info("registered name=%s version=%s promoted=%s reason=%s", name, version, promoted, reason)
    return Registration(run_id, model_uri, name, str(version), promoted, reason, candidate.spec.kind)


def decide_by_validation_mae(
    current_uri: str | None,
    frame: PreparedFrame | Sequence[PreparedFrame],
    val_start: int | Sequence[int],
    candidate: Forecaster,
    force: bool,
) -> tuple[bool, str]:
    """Champion decision on the candidate's own validation window(s)."""
    if force:
        return True, "forced (--promote)"
    if current_uri is None:
        return True, "no champion yet"
    frames = [frame] if isinstance(frame, PreparedFrame) else list(frame)
    starts = [val_start] if isinstance(val_start, int) else list(val_start)
    try:
        current = load(current_uri).forecaster
        current_mae = sum(validation_mae(current, f, v) for f, v in zip(frames, starts))
    except (FltsError, ValueError) as exc:  # incompatible or broken champion: replace it
        return True, f"current champion unusable ({exc})"
    new_mae = sum(validation_mae(candidate, f, v) for f, v in zip(frames, starts))
    if new_mae < current_mae:
        return True, f"val MAE {new_mae:.4g} beats champion {current_mae:.4g}"
    return False, f"val MAE {new_mae:.4g} does not beat champion {current_mae:.4g}"
