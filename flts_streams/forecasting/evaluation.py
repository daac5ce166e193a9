"""Rolling-origin backtests of a model against persistence and seasonal-naive baselines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import PreparedFrame


@dataclass(frozen=True)
class Scores:
    """MAE and RMSE per horizon step (1..H) of one method for one target."""

    name: str
    mae: np.ndarray
    rmse: np.ndarray

    @property
    def mean_mae(self) -> float:
        """MAE averaged over horizons."""
        return float(self.mae.mean())

    @property
    def mean_rmse(self) -> float:
        """RMSE averaged over horizons."""
        return float(self.rmse.mean())


def origins(n_rows: int, start: int, window: int, horizon: int, stride: int = 1) -> np.ndarray:
    """Forecast origins t (index of the first predicted row) that fit in the frame."""
    first = max(start, window)
    return np.arange(first, n_rows - horizon + 1, stride)


def actuals(y: np.ndarray, at: np.ndarray, horizon: int) -> np.ndarray:
    """(origins, H) matrix of true values y[t + h]."""
    return y[at[:, None] + np.arange(horizon)[None, :]]


def persistence(y: np.ndarray, at: np.ndarray, horizon: int) -> np.ndarray:
    """Last observed value repeated over the horizon."""
    return np.repeat(y[at - 1][:, None], horizon, axis=1)


def seasonal_naive(y: np.ndarray, at: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Value at the same time one season earlier."""
    idx = at[:, None] + np.arange(horizon)[None, :] - season
    if (idx < 0).any():
        raise ValueError(f"seasonal-naive needs {season} rows of history before the first origin")
    return y[idx]


def model_outputs(
    forecaster: Forecaster, frame: PreparedFrame, at: np.ndarray, chunk: int = 1024, history_rows: int | None = None
) -> np.ndarray:
    """(origins, H, targets, outputs) model forecasts, batched; each origin reads up to ``history_rows`` rows
    before it (default: what the model reads), as a request carrying them would."""
    spec = forecaster.spec
    rows = spec.history_rows if history_rows is None else max(history_rows, spec.window)
    out = []
    for lo in range(0, at.shape[0], chunk):
        inputs = [forecaster.make_input(frame.rows(max(0, t - rows), t)) for t in at[lo : lo + chunk]]
        out.append(forecaster.predict_inputs(inputs))
    return np.concatenate(out, axis=0)


def model_predictions(forecaster: Forecaster, frame: PreparedFrame, at: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(origins, H, targets) point forecasts, batched."""
    return model_outputs(forecaster, frame, at, chunk)[..., 0]


def score(name: str, pred: np.ndarray, truth: np.ndarray) -> Scores:
    """Per-horizon MAE/RMSE of (origins, H) predictions."""
    err = pred - truth
    return Scores(name, np.abs(err).mean(axis=0), np.sqrt((err**2).mean(axis=0)))


def backtest(
    forecaster: Forecaster,
    frame: PreparedFrame,
    start: int,
    target: str,
    *,
    stride: int = 1,
    season: int | None = None,
) -> tuple[list[Scores], dict[str, np.ndarray]]:
    """Scores of model, persistence and (if history allows) seasonal-naive from row ``start`` on."""
    spec = forecaster.spec
    season = season if season is not None else int(round(86400 / spec.cadence_s))
    at = origins(len(frame), max(start, season), spec.window, spec.horizon, stride)
    y = frame.column(target)
    truth = actuals(y, at, spec.horizon)
    j = spec.targets.index(target)
    preds: dict[str, np.ndarray] = {
        "model": model_predictions(forecaster, frame, at)[:, :, j],
        "persistence": persistence(y, at, spec.horizon),
        "seasonal_naive": seasonal_naive(y, at, spec.horizon, season),
    }
    preds["origins"] = at
    return [score(k, v, truth) for k, v in preds.items() if k != "origins"], preds


def validation_mae(forecaster: Forecaster, frame: PreparedFrame, start: int, stride: int = 1) -> float:
    """Model MAE of the first target averaged over horizons, from row ``start`` on."""
    spec = forecaster.spec
    at = origins(len(frame), start, spec.window, spec.horizon, stride)
    pred = model_predictions(forecaster, frame, at)[:, :, 0]
    return score("model", pred, actuals(frame.column(spec.targets[0]), at, spec.horizon)).mean_mae


Progress = Callable[[int, dict[str, float]], None]
