"""Valid /predict payloads: unique, regular 2-minute timestamps, realistic magnitudes."""

from __future__ import annotations

import random

import numpy as np

from flts_streams.forecasting.demo import demo_frame


class PayloadPool:
    """Slices of a demo series, each re-stamped at a random start so payloads differ."""

    def __init__(self, rows: int = 30, seed: int = 0, days: int = 7) -> None:
        frame = demo_frame(days=days, seed=seed, gaps=0, blanks=0)
        self.columns = [c for c in frame.columns if c != "time"]
        self.values = frame[self.columns].to_numpy()
        self.rows = rows
        self.rng = random.Random(seed)

    def payload(self, identifier: str = "PobleSec", inference_length: int = 30) -> dict:
        """One request body."""
        start = self.rng.randrange(0, len(self.values) - self.rows)
        t0 = np.datetime64("2024-01-01T00:00:00") + np.timedelta64(self.rng.randrange(0, 400_000) * 120, "s")
        ts = np.datetime_as_string(t0 + np.arange(self.rows) * np.timedelta64(120, "s"), unit="s")
        block = self.values[start : start + self.rows]
        data = {"ts": [t.replace("T", " ") for t in ts]}
        data.update({c: block[:, j].tolist() for j, c in enumerate(self.columns)})
        return {"identifier": identifier, "data": data, "inference_length": inference_length}
