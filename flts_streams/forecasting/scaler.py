"""Per-column standard scaler stored as plain numbers (JSON), with exact inverse."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scaler:
    """x' = (x - mean) / scale per named column; fitted on training rows only."""

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, columns: Sequence[str], values: np.ndarray) -> Scaler:
        """Fit on a (rows, columns) float matrix; constant columns get scale 1."""
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(columns), tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def params(self, columns: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, scale) arrays for ``columns`` (default: all, in order)."""
        if columns is None:
            return np.asarray(self.mean), np.asarray(self.scale)
        idx = [self.columns.index(c) for c in columns]
        return np.asarray(self.mean)[idx], np.asarray(self.scale)[idx]

    def transform(self, values: np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
        """Scale values whose last axis is ``columns`` (default: all, in order)."""
        mean, scale = self.params(columns)
        return (values - mean) / scale

    def inverse(self, values: np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
        """Undo transform, back to original units."""
        mean, scale = self.params(columns)
        return values * scale + mean

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"columns": list(self.columns), "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        """Inverse of to_dict."""
        return cls(tuple(d["columns"]), tuple(float(x) for x in d["mean"]), tuple(float(x) for x in d["scale"]))
