"""Calendar features from timestamps, as sin/cos pairs (vectorised)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flts_streams.core.errors import InvalidInput

_NS_MINUTE = 60 * 10**9
NS_DAY = 1440 * _NS_MINUTE
KNOWN = ("minute_of_day", "day_of_week", "day_of_year")


def _phase(ts: np.ndarray, name: str) -> np.ndarray:
    """Position within the period in [0, 1)."""
    ns = ts.astype("datetime64[ns]").astype(np.int64)
    if name == "minute_of_day":
        return (ns % NS_DAY) / NS_DAY
    if name == "day_of_week":
        # 1970-01-01 was a Thursday: +3 makes Monday 0.
        return ((ns // NS_DAY + 3) % 7) / 7.0
    if name == "day_of_year":
        days = ts.astype("datetime64[D]")
        start = days.astype("datetime64[Y]").astype("datetime64[D]")
        return (days - start).astype(np.int64) / 366.0
    raise InvalidInput(f"unknown time feature {name!r}; known: {list(KNOWN)}")


def time_features(ts: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(rows, 2*len(names)) float32 matrix of sin/cos for each named feature."""
    out = np.empty((ts.shape[0], 2 * len(names)), dtype=np.float32)
    for k, name in enumerate(names):
        angle = 2 * np.pi * _phase(ts, name)
        out[:, 2 * k] = np.sin(angle)
        out[:, 2 * k + 1] = np.cos(angle)
    return out
