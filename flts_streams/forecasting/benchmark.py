"""The forecast-quality benchmark (docs/MODEL.md): origins every ``stride`` rows of a test file, each
forecast from the rows before it (at most ``history_rows``), scored against simple baselines.

Baselines, all from the same rows a request would carry: persistence (the last value), seasonal-naive
(the value a day earlier), the window mean, the smoothed time-of-day profile of the past days, and the
even blend of those two. An optional reference model (forecasting/reference.py) sits beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from flts_streams.forecasting.evaluation import model_outputs
from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.history import history_features

# The reference: (frame, first test row, origins, horizon) -> (origins, horizon) forecasts of the target.
Reference = Callable[[PreparedFrame, int, np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class BenchmarkResult:
    """Forecasts of every method at the same origins, the actual values, and the model's quantiles."""

    target: str
    origins: np.ndarray  # row of each origin's first forecast step
    stamps: np.ndarray  # (origins, H) datetime64 of each forecast step
    truth: np.ndarray  # (origins, H)
    forecasts: dict[str, np.ndarray]  # method -> (origins, H); "model" first
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)  # level -> (origins, H)

    def mae(self, method: str) -> float:
        """MAE over every origin and horizon step."""
        return float(np.abs(self.forecasts[method] - self.truth).mean())

    def mae_by_horizon(self, method: str) -> np.ndarray:
        """MAE of each step 1..H."""
        return np.abs(self.forecasts[method] - self.truth).mean(axis=0)

    def mae_by_hour(self, method: str) -> np.ndarray:
        """MAE by hour of day of the forecast step (24 values; NaN for hours never forecast)."""
        hours = (self.stamps.astype("datetime64[h]").astype(np.int64) % 24).ravel()
        err = np.abs(self.forecasts[method] - self.truth).ravel()
        sums, counts = np.bincount(hours, err, 24), np.bincount(hours, minlength=24)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def coverage(self, low: float, high: float) -> np.ndarray:
        """Share of actuals within the [low, high] quantile interval, per horizon step."""
        inside = (self.truth >= self.quantiles[low]) & (self.truth <= self.quantiles[high])
        return inside.mean(axis=0)

    def pinball(self, level: float) -> float:
        """Mean pinball loss of one quantile."""
        err = self.truth - self.quantiles[level]
        return float(np.maximum(level * err, (level - 1) * err).mean())


def run(
    forecaster: Forecaster,
    frame: PreparedFrame,
    start: int,
    *,
    stride: int = 20,
    history_rows: int = 5_040,
    reference: Reference | None = None,
) -> BenchmarkResult:
    """Origins from row ``start`` every ``stride`` rows; each method sees at most ``history_rows`` rows before."""
    spec = forecaster.spec
    h, target = spec.horizon, spec.targets[0]
    at = np.arange(max(start, spec.window), len(frame) - h + 1, stride)
    if at.size == 0:
        raise ValueError(f"no origin fits: {len(frame) - start} test rows for a horizon of {h}")
    steps = at[:, None] + np.arange(h)[None, :]
    y = frame.column(target)
    outputs = model_outputs(forecaster, frame, at, history_rows=history_rows)[:, :, 0, :]
    forecasts = {"model": outputs[..., 0], **baselines(y, at, h, spec.window, spec.rows_per_day, history_rows)}
    if reference is not None:
        forecasts["reference"] = reference(frame, start, at, h)
    quantiles = {q: outputs[..., 1 + i] for i, q in enumerate(spec.quantiles)}
    return BenchmarkResult(target, at, frame.timestamps[steps], y[steps], forecasts, quantiles)


def baselines(
    y: np.ndarray, at: np.ndarray, horizon: int, window: int, per_day: int, history_rows: int
) -> dict[str, np.ndarray]:
    """(origins, H) forecasts of each simple baseline, from the rows before each origin."""
    steps = at[:, None] + np.arange(horizon)[None, :]
    level = np.stack([y[t - window : t].mean() for t in at])
    days = max(1, history_rows // per_day)
    feats = history_features(y, at, window=window, horizon=horizon, per_day=per_day, days=days, halfwidth=7)
    profile = feats[:, :horizon].astype(np.float64)
    seasonal = np.where(steps - per_day >= 0, y[np.clip(steps - per_day, 0, None)], level[:, None])
    return {
        "persistence": np.repeat(y[at - 1][:, None], horizon, axis=1),
        "seasonal_naive": seasonal,
        "window_mean": np.repeat(level[:, None], horizon, axis=1),
        "profile_7d": profile,
        "blend": 0.5 * profile + 0.5 * level[:, None],
    }
