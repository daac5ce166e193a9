"""Forecast API: prepared frames in, timestamps and values in original units out."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from flts_streams.errors import HorizonTooLong, InvalidInput, NotEnoughRows
from flts_streams.forecasting.features import time_features
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.model import ForecastNet
from flts_streams.forecasting.spec import ModelSpec


def iso_seconds(ts: np.ndarray) -> list[str]:
    """ISO-8601 strings at second resolution (``2024-01-01T00:02:00``)."""
    return np.datetime_as_string(ts, unit="s").tolist()


class IsoSeconds:
    """Same strings as :func:`iso_seconds`, ~40% cheaper: forecasts repeat few dates and times of day.

    Both parts are memoised (times of day are bounded by 86,400; dates are dropped past a bound).
    np.datetime_as_string was the single dearest call of a /predict request.
    """

    MAX_DATES = 10_000

    def __init__(self) -> None:
        self._dates: dict[int, str] = {}  # days since the epoch -> "YYYY-MM-DDT"
        self._times: dict[int, str] = {}  # seconds of the day -> "hh:mm:ss"

    def __call__(self, ts: np.ndarray) -> list[str]:
        days, tod = np.divmod(ts.astype("datetime64[s]").view(np.int64), 86_400)  # floor, like numpy's own
        days_l, tod_l = days.tolist(), tod.tolist()
        dates, times = self._dates, self._times
        try:
            return [dates[d] + times[t] for d, t in zip(days_l, tod_l)]
        except KeyError:  # a date or time of day not seen yet
            return [self._date(d) + self._time(t) for d, t in zip(days_l, tod_l)]

    def _date(self, days: int) -> str:
        text = self._dates.get(days)
        if text is None:
            if len(self._dates) >= self.MAX_DATES:
                self._dates.clear()
            text = self._dates[days] = f"{np.datetime64(days, 'D')}T"
        return text

    def _time(self, seconds: int) -> str:
        text = self._times.get(seconds)
        if text is None:
            text = self._times[seconds] = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        return text


@dataclass(frozen=True)
class Forecast:
    """Future timestamps and target values (original units)."""

    timestamps: np.ndarray  # datetime64[ns], len h
    targets: tuple[str, ...]
    values: np.ndarray  # (h, len(targets)) float64
    format_ts: Callable[[np.ndarray], list[str]] = field(default=iso_seconds, repr=False, compare=False)

    def records(self, time_key: str = "ts") -> list[dict[str, Any]]:
        """Row-oriented JSON-ready records with ISO-8601 timestamps."""
        iso = self.format_ts(self.timestamps)
        columns = self.values.T.tolist()
        if len(self.targets) == 1:  # the common case; a dict display is ~3x faster than dict(zip())
            (name,), (values,) = self.targets, columns
            return [{time_key: t, name: v} for t, v in zip(iso, values)]
        keys = (time_key, *self.targets)
        return [dict(zip(keys, row)) for row in zip(iso, *columns)]


def _traced(net: ForecastNet, spec: ModelSpec) -> torch.nn.Module:
    """The network as TorchScript: the whole forward runs with the GIL released once, not once per op.

    Eager, each of the forward's ~28 torch ops gives the GIL back and must win it again from the
    event loop; with the loop busy that stretched a 3 ms forward of 27 windows to 13 ms (and to
    190 ms next to a thread that never blocks). Same kernels, same numbers (a test compares).
    """
    n_time = 2 * len(spec.time_features)
    example = (torch.zeros(2, spec.window, len(spec.features) + n_time), torch.zeros(2, spec.horizon, n_time))
    with torch.no_grad():
        return torch.jit.trace(net, example, check_trace=False)


@dataclass(frozen=True)
class ModelInput:
    """One validated window; scaling and calendar features are computed per batch, not per request."""

    window: np.ndarray  # (W, F) float64, original units
    last_ns: int  # timestamp of the window's last row, ns since the epoch


class Forecaster:
    """A trained network plus its spec; stateless and safe to call from threads."""

    def __init__(self, spec: ModelSpec, net: ForecastNet) -> None:
        self.spec = spec
        self.net = net.eval()
        self._run = _traced(self.net, spec)  # what serving calls; self.net stays the trainable module
        self._mean, self._scale = spec.scaler.params(spec.features)
        self._cadence = spec.cadence  # a property that builds a timedelta64: not per request
        self.iso = IsoSeconds()
        # Window and horizon timestamps relative to the last row: frames are regular by construction.
        step_ns = int(spec.cadence.astype("timedelta64[ns]").astype(np.int64))
        self._offsets_ns = np.arange(1 - spec.window, spec.horizon + 1, dtype=np.int64) * step_ns

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
        """Check the frame against the model and take its last W rows of the model's features."""
        spec = self.spec
        if len(frame) < spec.window:
            raise NotEnoughRows(f"need at least {spec.window} rows (the model's input window); got {len(frame)}")
        if frame.cadence != self._cadence:
            raise InvalidInput(
                f"data cadence is {frame.cadence.astype('timedelta64[s]')} but the model was trained on "
                f"{spec.cadence.astype('timedelta64[s]')} steps"
            )
        return ModelInput(frame.select(spec.features)[-spec.window:], int(frame.timestamps.view(np.int64)[-1]))

    def future_timestamps(self, item: ModelInput) -> np.ndarray:
        """The H timestamps a window's forecast is for."""
        return (item.last_ns + self._offsets_ns[self.spec.window:]).view("datetime64[ns]")

    def predict_inputs(self, inputs: Sequence[ModelInput]) -> np.ndarray:
        """One batched forward: (B, H, targets) in original units."""
        w = self.spec.window
        raw = np.stack([i.window for i in inputs])  # (B, W, F)
        grid = np.fromiter((i.last_ns for i in inputs), np.int64, len(inputs))[:, None] + self._offsets_ns
        calendar = time_features(grid.reshape(-1).view("datetime64[ns]"), self.spec.time_features)
        calendar = calendar.reshape(len(inputs), grid.shape[1], 2 * len(self.spec.time_features))
        scaled = ((raw - self._mean) / self._scale).astype(np.float32)
        x = torch.from_numpy(np.concatenate([scaled, calendar[:, :w]], axis=2))
        fut = torch.from_numpy(np.ascontiguousarray(calendar[:, w:]))
        with torch.inference_mode():
            out = self._run(x, fut).numpy().astype(np.float64)
        return self.spec.scaler.inverse(out, self.spec.targets)

    def forecast_batch(self, frames: Sequence[PreparedFrame], horizon: int | None = None) -> list[Forecast]:
        """Forecast many frames with one forward pass."""
        h = self.check_horizon(horizon)
        inputs = [self.make_input(f) for f in frames]
        values = self.predict_inputs(inputs)
        return [Forecast(self.future_timestamps(i)[:h], self.spec.targets, v[:h], self.iso) for i, v in zip(inputs, values)]

    def forecast(self, frame: PreparedFrame, horizon: int | None = None) -> Forecast:
        """Forecast one frame: timestamps strictly after its last row, at its cadence."""
        return self.forecast_batch([frame], horizon)[0]
