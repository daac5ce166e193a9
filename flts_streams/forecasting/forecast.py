"""Forecast API: prepared frames in, timestamps and values in original units out."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from flts_streams.errors import HorizonTooLong, InvalidInput, NotEnoughRows
from flts_streams.forecasting.features import time_features
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.model import ForecastNet
from flts_streams.forecasting.spec import ModelSpec


@dataclass(frozen=True)
class Forecast:
    """Future timestamps and target values (original units)."""

    timestamps: np.ndarray  # datetime64[ns], len h
    targets: tuple[str, ...]
    values: np.ndarray  # (h, len(targets)) float64

    def records(self, time_key: str = "ts") -> list[dict[str, Any]]:
        """Row-oriented JSON-ready records with ISO-8601 timestamps."""
        keys = (time_key, *self.targets)
        iso = np.datetime_as_string(self.timestamps, unit="s").tolist()
        return [dict(zip(keys, row)) for row in zip(iso, *self.values.T.tolist())]


@dataclass(frozen=True)
class ModelInput:
    """One prepared window ready for a batched forward."""

    window: np.ndarray  # (W, F+T) float32
    future_time: np.ndarray  # (H, T) float32
    future_ts: np.ndarray  # (H,) datetime64[ns]


class Forecaster:
    """A trained network plus its spec; stateless and safe to call from threads."""

    def __init__(self, spec: ModelSpec, net: ForecastNet) -> None:
        self.spec = spec
        self.net = net.eval()

    @classmethod
    def from_state(cls, spec: ModelSpec, state: dict[str, torch.Tensor]) -> Forecaster:
        """Rebuild from a state dict saved by training."""
        net = ForecastNet(spec)
        net.load_state_dict(state)
        return cls(spec, net)

    def check_horizon(self, horizon: int | None) -> int:
        """Validate a requested horizon, defaulting to the model's."""
        h = self.spec.horizon if horizon is None else int(horizon)
        if h < 1 or h > self.spec.horizon:
            raise HorizonTooLong(f"inference_length must be between 1 and {self.spec.horizon} (the model's horizon); got {h}")
        return h

    def make_input(self, frame: PreparedFrame) -> ModelInput:
        """Scale the last W rows and compute calendar features for window and horizon."""
        spec = self.spec
        if len(frame) < spec.window:
            raise NotEnoughRows(f"need at least {spec.window} rows (the model's input window); got {len(frame)}")
        if frame.cadence != spec.cadence:
            raise InvalidInput(
                f"data cadence is {frame.cadence.astype('timedelta64[s]')} but the model was trained on "
                f"{spec.cadence.astype('timedelta64[s]')} steps"
            )
        ts = frame.timestamps[-spec.window:]
        raw = frame.select(spec.features)[-spec.window:]
        scaled = spec.scaler.transform(raw, spec.features).astype(np.float32)
        future_ts = ts[-1] + np.arange(1, spec.horizon + 1) * spec.cadence
        window = np.concatenate([scaled, time_features(ts, spec.time_features)], axis=1)
        return ModelInput(window, time_features(future_ts, spec.time_features), future_ts)

    def predict_inputs(self, inputs: Sequence[ModelInput]) -> np.ndarray:
        """One batched forward: (B, H, targets) in original units."""
        x = torch.from_numpy(np.stack([i.window for i in inputs]))
        fut = torch.from_numpy(np.stack([i.future_time for i in inputs]))
        with torch.inference_mode():
            scaled = self.net(x, fut).numpy().astype(np.float64)
        return self.spec.scaler.inverse(scaled, self.spec.targets)

    def forecast_batch(self, frames: Sequence[PreparedFrame], horizon: int | None = None) -> list[Forecast]:
        """Forecast many frames with one forward pass."""
        h = self.check_horizon(horizon)
        inputs = [self.make_input(f) for f in frames]
        values = self.predict_inputs(inputs)
        return [Forecast(i.future_ts[:h], self.spec.targets, v[:h]) for i, v in zip(inputs, values)]

    def forecast(self, frame: PreparedFrame, horizon: int | None = None) -> Forecast:
        """Forecast one frame: timestamps strictly after its last row, at its cadence."""
        return self.forecast_batch([frame], horizon)[0]
