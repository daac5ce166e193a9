"""Everything needed to serve a trained forecaster, as plain JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from flts_streams.forecasting.scaler import Scaler

FEATURES = (
    "down",
    "up",
    "rnti_count",
    "mcs_down",
    "mcs_down_var",
    "mcs_up",
    "mcs_up_var",
    "rb_down",
    "rb_down_var",
    "rb_up",
    "rb_up_var",
)
# Columns that grow with a site's traffic: a scale-free model reads them as logs relative to the window.
VOLUME_FEATURES = ("down", "up", "rnti_count")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture, data contract and preprocessing of one trained model."""

    kind: str
    features: tuple[str, ...]
    targets: tuple[str, ...]
    window: int
    horizon: int
    cadence_s: float
    scaler: Scaler
    time_features: tuple[str, ...] = ("minute_of_day", "day_of_week")
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    synthetic_data: bool = False  # trained on generated data (absent from older specs: real)
    # Absent from older specs, whose defaults below reproduce them: a point forecast from the window alone.
    quantiles: tuple[float, ...] = ()  # forecast besides the point forecast (pinball loss), ascending
    history_days: int = 0  # days of the first target's history read besides the window (0: the window only)
    profile_halfwidth: int = 7  # rows each side of a time-of-day slot averaged in the history profile
    log_targets: bool = False  # targets modelled as log values: daily shapes become ratios; medians are kept
    members: int = 1  # networks trained from different seeds whose outputs are averaged
    # Added to each quantile output in the network's scaled units: the calibration on the validation
    # split (training.calibrate); empty: none.
    quantile_offsets: tuple[float, ...] = ()
    distilled_from: int = 0  # members of the ensemble this one network was trained to reproduce (0: none)
    # Scale-free inputs (a global model across sites): these columns are read as logs and centred on their
    # window mean, the history features relative to the window's level; empty: absolute inputs.
    relative: tuple[str, ...] = ()

    @property
    def cadence(self) -> np.timedelta64:
        """Cadence as timedelta64[ns]."""
        return np.timedelta64(int(round(self.cadence_s * 1e9)), "ns")

    @property
    def rows_per_day(self) -> int:
        """Rows in one day at the model's cadence."""
        return max(1, int(round(86_400 / self.cadence_s)))

    @property
    def history_rows(self) -> int:
        """Rows of the first target the model reads (the window alone when it reads no history)."""
        return max(self.window, self.history_days * self.rows_per_day)

    @property
    def outputs(self) -> int:
        """Values per target and step: the point forecast, then each quantile."""
        return 1 + len(self.quantiles)

    @property
    def output_offsets(self) -> np.ndarray:
        """(outputs,) scaled-unit offsets: 0 for the point forecast, then each quantile's calibration."""
        offsets = np.zeros(self.outputs)
        offsets[1 : 1 + len(self.quantile_offsets)] = self.quantile_offsets
        return offsets

    @property
    def log_index(self) -> list[int]:
        """Positions of the features read as logs: the targets of a log-space model and the relative columns."""
        logged = set(self.target_index) if self.log_targets else set()
        return sorted(logged | {self.features.index(c) for c in self.relative})

    @property
    def relative_index(self) -> list[int]:
        """Positions of the relative (window-centred) columns within the features."""
        return [self.features.index(c) for c in self.relative]

    @property
    def target_index(self) -> list[int]:
        """Positions of the targets within the features."""
        return [self.features.index(t) for t in self.targets]

    def to_json(self) -> str:
        """Serialize (scaler as numbers, never a pickle)."""
        d = asdict(self)
        d["scaler"] = self.scaler.to_dict()
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Inverse of to_json."""
        d: dict[str, Any] = json.loads(text)
        d["scaler"] = Scaler.from_dict(d["scaler"])
        for key in ("features", "targets", "time_features", "quantiles", "quantile_offsets", "relative"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
