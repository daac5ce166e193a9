"""End-to-end training and evaluation runs (files in, MLflow runs and reports out)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting import packaging
from flts_streams.forecasting.evaluation import Scores, backtest
from flts_streams.forecasting.frame import PreparedFrame, prepare_frame
from flts_streams.forecasting.training import TrainConfig, train

log = logging.getLogger(__name__)


def read_table_file(path: Path) -> pd.DataFrame:
    """CSV or Parquet file as a DataFrame."""
    if not path.exists():
        raise InvalidInput(f"data file {path} does not exist")
    return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)


def load_frame(path: Path, required: tuple[str, ...] = ()) -> PreparedFrame:
    """Read and prepare a training/evaluation file (blank cells and short gaps imputed)."""
    return prepare_frame(read_table_file(path), required=required, impute=True)


def train_and_register(
    data: Path,
    identifier: str,
    cfg: TrainConfig,
    *,
    registry_prefix: str,
    alias: str,
    promote: bool = False,
    progress: bool = True,
) -> packaging.Registration:
    """Train on a file, log the model to MLflow, register it and maybe move the champion alias."""
    frame = load_frame(data, cfg.features)
    bar = tqdm(total=cfg.epochs, desc=f"train {identifier} {cfg.kind}", unit="epoch", disable=not progress)

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}")

    try:
        result = train(frame, cfg, on_epoch)
    finally:
        bar.close()
    run_id, uri = packaging.log_model(result, cfg, identifier, data.name)
    name = packaging.registered_name(registry_prefix, identifier)
    return packaging.register(run_id, uri, name, alias, frame, result.val_start, result.forecaster, force=promote)


@dataclass(frozen=True)
class Evaluation:
    """Backtest scores plus the series needed for a plot."""

    scores: list[Scores]
    target: str
    horizon: int
    origins: int


def evaluate(
    model_uri: str, data: Path, history: Path | None, *, stride: int = 1, plot: Path | None = None
) -> Evaluation:
    """Rolling-origin backtest over ``data`` (with ``history`` before it for context and seasonality)."""
    loaded = packaging.load(model_uri)
    spec = loaded.forecaster.spec
    test = read_table_file(data)
    joined = pd.concat([read_table_file(history), test], ignore_index=True) if history else test
    frame = prepare_frame(joined, required=spec.features, impute=True)
    start = len(frame) - len(prepare_frame(test, required=spec.features, impute=True))
    target = spec.targets[0]
    scores, preds = backtest(loaded.forecaster, frame, start, target, stride=stride)
    if plot:
        _plot(frame, preds, target, spec.horizon, plot)
    return Evaluation(scores, target, spec.horizon, int(preds["origins"].shape[0]))


def _plot(frame: PreparedFrame, preds: dict[str, np.ndarray], target: str, horizon: int, path: Path) -> None:
    """Forecasts vs actuals at horizons 1 and H, and MAE per horizon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at = preds["origins"]
    y = frame.column(target)
    fig, axes = plt.subplots(2, 1, figsize=(12, 7))
    for h in (1, horizon):
        axes[0].plot(frame.timestamps[at + h - 1], preds["model"][:, h - 1], lw=0.8, label=f"model h={h}")
    axes[0].plot(frame.timestamps[at], y[at], color="black", lw=0.6, alpha=0.6, label="actual")
    axes[0].set_title(f"{target}: forecasts vs actuals")
    axes[0].legend(loc="upper right")
    truth = y[at[:, None] + np.arange(horizon)[None, :]]
    for name in ("model", "persistence", "seasonal_naive"):
        axes[1].plot(np.arange(1, horizon + 1), np.abs(preds[name] - truth).mean(axis=0), marker=".", label=name)
    axes[1].set_xlabel("horizon (steps)")
    axes[1].set_ylabel("MAE")
    axes[1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
