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
    """
    c = np.concatenate([[0.0], np.cumsum(y, dtype=np.float64)])
    at = np.asarray(at, dtype=np.int64)
    lo = np.maximum(at - days * per_day, 0)[:, None]
    rolls = [_mean(c, np.maximum(at - w, lo[:, 0]), at) for w in (window, max(1, per_day // 4), per_day)]
    level = rolls[0]
    steps = np.arange(-window, horizon)[None, :]
    total = np.zeros((at.shape[0], window + horizon))
    count = np.zeros_like(total)
    day_before = None
    for d in range(1, days + 1):
        centre = at[:, None] + steps - d * per_day
        a, b = np.maximum(centre - halfwidth, lo), np.minimum(centre + halfwidth + 1, at[:, None])
        found = (centre - halfwidth >= lo) & (b > a)
        value = np.where(found, (c[np.clip(b, 0, None)] - c[np.clip(a, 0, None)]) / np.maximum(b - a, 1), 0.0)
        total += value
        count += found
        if d == 1:
            day_before = np.where(found, value, np.nan)
    profile = np.where(count > 0, total / np.maximum(count, 1), level[:, None])
    future = profile[:, window:]
    before = (
        future if day_before is None else np.where(np.isnan(day_before[:, window:]), future, day_before[:, window:])
    )
    share = count.max(axis=1) / max(days, 1)  # days that gave at least one slot (the oldest gives only some)
    out = np.concatenate(
        [future, profile[:, :window].mean(axis=1, keepdims=True), before, np.stack(rolls, axis=1), share[:, None]],
        axis=1,
    )
    return out.astype(np.float32)


def _mean(c: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mean of the series between ``start`` and ``end`` (exclusive) from its cumulative sum ``c``."""
    return (c[end] - c[start]) / np.maximum(end - start, 1)
