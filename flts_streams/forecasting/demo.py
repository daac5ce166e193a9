"""Synthetic cell-traffic data with the shape of the real Barcelona LTE files."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flts_streams.forecasting.frame import PreparedFrame, columns_of, prepare_frame
from flts_streams.forecasting.spec import FEATURES

CADENCE_S = 120


def demo_frame(
    days: int = 14, seed: int = 0, start: str = "2024-01-01 00:00:00", gaps: int = 3, blanks: int = 20
) -> pd.DataFrame:
    """Daily and weekly seasonality, noise, bursts, a few missing rows and blank cells."""
    rng = np.random.default_rng(seed)
    n = days * 86400 // CADENCE_S
    ts = np.datetime64(start, "s") + np.arange(n) * np.timedelta64(CADENCE_S, "s")
    minute = (np.arange(n) * CADENCE_S / 60.0) % 1440
    dow = (ts.astype("datetime64[D]").astype(np.int64) + 3) % 7
    daily = 0.55 + 0.45 * np.sin(2 * np.pi * (minute - 540) / 1440) + 0.15 * np.sin(4 * np.pi * minute / 1440)
    weekly = np.where(dow >= 5, 0.75, 1.0)
    bursts = _bursts(rng, n)
    load = np.clip(daily * weekly * bursts, 0.05, None)
    users = 500 + 9000 * load * rng.lognormal(0, 0.08, n)
    down = 1.5e7 + 6e8 * load * rng.lognormal(0, 0.25, n)
    up = 2e6 + 8e7 * load * rng.lognormal(0, 0.35, n)
    mcs_down = np.clip(18 - 4 * load + rng.normal(0, 1.5, n), 0, 31)
    mcs_up = np.clip(14 - 3 * load + rng.normal(0, 2.0, n), 0, 31)
    rb_down = np.clip(0.02 + 0.35 * load * rng.lognormal(0, 0.2, n), 0.001, 0.75)
    rb_up = np.clip(0.005 + 0.1 * load * rng.lognormal(0, 0.3, n), 0.001, 0.75)
    cols = {
        "down": down,
        "up": up,
        "rnti_count": np.round(users),
        "mcs_down": mcs_down,
        "mcs_down_var": np.abs(rng.normal(80, 15, n)),
        "mcs_up": mcs_up,
        "mcs_up_var": np.abs(rng.normal(60, 15, n)),
        "rb_down": rb_down,
        "rb_down_var": np.abs(rng.normal(6e-8, 2e-8, n)),
        "rb_up": rb_up,
        "rb_up_var": np.abs(rng.normal(2e-8, 8e-9, n)),
    }
    frame = pd.DataFrame({"time": pd.to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S"), **{c: cols[c] for c in FEATURES}})
    return _damage(frame, rng, gaps, blanks)


def _bursts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Occasional multiplicative traffic bursts lasting 10-60 minutes."""
    out = np.ones(n)
    for start in rng.choice(n, size=max(1, n // 2000), replace=False):
        out[start : start + int(rng.integers(5, 30))] *= rng.uniform(1.5, 2.5)
    return out


def _damage(frame: pd.DataFrame, rng: np.random.Generator, gaps: int, blanks: int) -> pd.DataFrame:
    """Remove a few short runs of rows and blank a few cells, as real exports have."""
    drop: list[int] = []
    for start in rng.choice(np.arange(100, len(frame) - 100), size=gaps, replace=False):
        drop.extend(range(int(start), int(start) + int(rng.integers(1, 4))))
    frame = frame.drop(index=drop).reset_index(drop=True)
    for _ in range(blanks):
        frame.iat[int(rng.integers(0, len(frame))), int(rng.integers(1, frame.shape[1]))] = np.nan
    return frame


def demo_prepared_frame(days: int = 1) -> PreparedFrame:
    """A small prepared demo frame (e.g. to smoke-test a model when no real data is at hand)."""
    return prepare_frame(columns_of(demo_frame(days=days, gaps=0, blanks=0)), impute=True)
