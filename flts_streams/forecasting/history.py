"""Features of a target's recent history: a smoothed time-of-day profile, the day before, rolling means.

Computed from one series (the first target, in the model's scaled space) for any number of forecast
origins at once with one cumulative sum: a request of 5,040 rows costs a few numpy calls. Every
feature is a mean of past values, so it is already in the scale the network reads. Where the
history is too short for a feature its fallback is the window's level (and ``days`` says how many
days were there), so a 30-row request gets the window-only forecast of the same network.
"""

from __future__ import annotations

import numpy as np


def history_size(horizon: int) -> int:
    """Features per origin: profile at the H future slots, its mean over the window's slots, the day before at the
    H future slots, three rolling means and the share of days found."""
    return 2 * horizon + 5


def history_features(
    y: np.ndarray,
    at: np.ndarray,
    *,
    window: int,
    horizon: int,
    per_day: int,
    days: int,
    halfwidth: int,
) -> np.ndarray:
    """(len(at), history_size(horizon)) float32 features for origins ``at`` (index of the first forecast row of ``y``).

    Only ``y[at - days * per_day : at]`` is read for each origin: what a request of that many rows carries.
    Origins are taken in chunks (training passes every row: the day-by-slot arrays stay ~20 MB).
    """
    c = np.concatenate([[0.0], np.cumsum(y, dtype=np.float64)])  # every mean below is a difference of it
    parts = [
        _features_of(c, part, window, horizon, per_day, days, halfwidth)
        for part in _chunks(np.asarray(at, dtype=np.int64))
    ]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _features_of(
    c: np.ndarray, at: np.ndarray, window: int, horizon: int, per_day: int, days: int, halfwidth: int
) -> np.ndarray:
    """history_features of some origins, from the series' cumulative sum ``c``."""
    lo = np.maximum(at - days * per_day, 0)
    rolls = np.stack([_mean(c, np.maximum(at - w, lo), at) for w in (window, max(1, per_day // 4), per_day)], axis=1)
    level = rolls[:, :1]
    if days == 0 or int(at.max()) + horizon - per_day - halfwidth < 0 or int((at - lo).max()) < per_day - window:
        # No origin reaches a slot of the day before (e.g. a 30-row request): every feature falls back.
        fallback = np.repeat(level, horizon, axis=1)
        zeros = np.zeros((at.shape[0], 1))
        return np.concatenate([fallback, level, fallback, rolls, zeros], axis=1).astype(np.float32)
    # (origins, days, W+H) slot centres, all days at once (a Python loop over days cost ~20 us a day per request).
    steps = np.arange(-window, horizon)[None, None, :]
    back = (np.arange(1, days + 1) * per_day)[None, :, None]
    centre = at[:, None, None] + steps - back
    low, high = lo[:, None, None], at[:, None, None]
    a, b = np.maximum(centre - halfwidth, low), np.minimum(centre + halfwidth + 1, high)
    found = (centre - halfwidth >= low) & (b > a)
    value = np.where(found, (c[np.clip(b, 0, None)] - c[np.clip(a, 0, None)]) / np.maximum(b - a, 1), 0.0)
    count = found.sum(axis=1)
    profile = np.where(count > 0, value.sum(axis=1) / np.maximum(count, 1), level)
    future = profile[:, window:]
    before = np.where(found[:, 0, window:], value[:, 0, window:], future)  # the day before, else the profile
    share = found.any(axis=2).sum(axis=1) / days  # days that gave at least one slot (the oldest gives only some)
    out = np.concatenate(
        [future, profile[:, :window].mean(axis=1, keepdims=True), before, rolls, share[:, None]], axis=1
    )
    return out.astype(np.float32)


def window_only_features(y: np.ndarray, *, window: int, horizon: int, per_day: int) -> np.ndarray | None:
    """history_features of series too short to reach the day before (30-row requests), cheaply; else None.

    ``y``: (series, n) of equal length n, each ending at its forecast origin -> (series, K) float32.
    The general path costs ~25 us a series even when every feature falls back; this one a few numpy
    calls for the whole stack (a micro-batch's requests: Forecaster.predict_inputs).
    """
    n = y.shape[1]
    if n >= per_day - window:
        return None

    def mean_of_last(rows: int) -> np.ndarray:
        return np.add.reduce(y[:, n - min(n, rows) :], axis=1) / min(n, rows)

    out = np.repeat(mean_of_last(window)[:, None], history_size(horizon), axis=1)
    out[:, -3] = mean_of_last(max(1, per_day // 4))
    out[:, -2] = mean_of_last(n)  # the whole series: shorter than the 24 h mean's window
    out[:, -1] = 0.0
    return out.astype(np.float32)


def _chunks(at: np.ndarray, size: int = 4_096) -> list[np.ndarray]:
    return [at[i : i + size] for i in range(0, at.shape[0], size)] or [at]


def _mean(c: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mean of the series between ``start`` and ``end`` (exclusive) from its cumulative sum ``c``."""
    return (c[end] - c[start]) / np.maximum(end - start, 1)
