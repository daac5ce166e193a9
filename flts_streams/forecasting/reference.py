"""LightGBM reference for the forecast-quality benchmark (the optional ``reference`` extra, never served).

Direct multi-horizon: one L1 regressor per step h, fitted on the training rows only, reading what a
request carries: the last 30 values of the target, the window means of the other features, rolling
means (1 h, 6 h, 24 h), the value a day before the forecast step, its smoothed 7-day time-of-day
profile and the time of day. The number of trees and the leaves (15 or 63) are chosen on the last
20% of the training rows, then each model is refitted on all of them.
"""

from __future__ import annotations

import numpy as np

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.history import history_features

LAGS = 30
VALIDATION = 0.2


def lightgbm_reference(target: str, *, history_rows: int = 5_040, per_day: int = 720, seed: int = 0):
    """A benchmark Reference: fits on the rows before the first test row, forecasts every origin."""
    try:
        import lightgbm  # noqa: F401 - only checked here; used in _fit
    except ImportError as exc:
        raise InvalidInput("the LightGBM reference needs the 'reference' extra: pip install '.[reference]'") from exc

    def forecast(frame: PreparedFrame, start: int, at: np.ndarray, horizon: int) -> np.ndarray:
        days = max(1, history_rows // per_day)
        train_at = np.arange(LAGS, start - horizon + 1)
        x_train = _features(frame, target, train_at, horizon, per_day, days)
        y = frame.column(target)
        x_test = _features(frame, target, at, horizon, per_day, days)
        out = np.empty((len(at), horizon))
        for h in range(horizon):
            model = _fit(x_train[h], y[train_at + h], seed)
            out[:, h] = model.predict(x_test[h])
        return out

    return forecast


def _features(
    frame: PreparedFrame, target: str, at: np.ndarray, horizon: int, per_day: int, days: int
) -> list[np.ndarray]:
    """Per step h, the (origins, features) matrix of that step's regressor."""
    y = frame.column(target)
    lags = y[at[:, None] - np.arange(1, LAGS + 1)[None, :]]
    others = [c for c in frame.columns if c != target]
    window_means = np.stack(
        [frame.column(c)[at[:, None] - np.arange(1, LAGS + 1)].mean(axis=1) for c in others], axis=1
    )
    hist = history_features(y, at, window=LAGS, horizon=horizon, per_day=per_day, days=days, halfwidth=7).astype(
        np.float64
    )
    profile, rolls = hist[:, :horizon], hist[:, 2 * horizon + 1 : 2 * horizon + 4]
    minutes = frame.timestamps.astype("datetime64[m]").astype(np.int64) % 1440
    shared = np.concatenate([lags, window_means, rolls], axis=1)
    out = []
    for h in range(horizon):
        step = at + h
        before = np.where(step - per_day >= 0, y[np.clip(step - per_day, 0, None)], lags[:, 0])
        angle = 2 * np.pi * minutes[np.minimum(step, len(y) - 1)] / 1440
        out.append(np.column_stack([shared, before, profile[:, h], np.sin(angle), np.cos(angle)]))
    return out


def _fit(x: np.ndarray, y: np.ndarray, seed: int):
    """Choose leaves and trees on the last VALIDATION share, refit on everything."""
    import lightgbm as lgb

    cut = int(len(y) * (1 - VALIDATION))
    best = None
    for leaves in (15, 63):
        params = {
            "objective": "l1",
            "learning_rate": 0.05,
            "num_leaves": leaves,
            "min_data_in_leaf": 40,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": seed,
            "verbose": -1,
        }
        booster = lgb.train(
            params,
            lgb.Dataset(x[:cut], y[:cut]),
            1000,
            valid_sets=[lgb.Dataset(x[cut:], y[cut:])],
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        score = booster.best_score["valid_0"]["l1"]
        if best is None or score < best[0]:
            best = (score, params, booster.best_iteration)
    assert best is not None
    _, params, rounds = best
    return lgb.train(params, lgb.Dataset(x, y), max(rounds, 1))
