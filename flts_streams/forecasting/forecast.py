"""Forecast API: prepared frames in, timestamps and values in original units out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import torch

from flts_streams.core.errors import HorizonTooLong, InvalidInput, NotEnoughRows
from flts_streams.forecasting._records_json import splice
from flts_streams.forecasting.features import time_features
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.graph import LOG_FLOOR, held_by_cpp, private_graph, serving_graph, traced_net
from flts_streams.forecasting.history import history_features, history_size, window_only_features
from flts_streams.forecasting.model import Net, build_net
from flts_streams.forecasting.spec import ModelSpec

_NS = np.dtype("datetime64[ns]")


def iso_seconds(ts: np.ndarray) -> list[str]:
    """ISO-8601 strings at second resolution (``2024-01-01T00:02:00``)."""
    return np.datetime_as_string(ts, unit="s").tolist()


class GridIso:
    """:func:`iso_seconds` for regular timestamps on a cadence grid aligned to midnight, as slices of day tables.

    Forecast timestamps are the last input row plus whole steps. With 2-minute data every day has
    the same 720 slots, so one table of strings per day serves every forecast of every identifier
    that day, and a forecast's timestamps are one list slice. np.datetime_as_string was the dearest
    call of a /predict request (~140k instructions for 30 stamps; the slice path is a few thousand).
    Anything else (off the grid, irregular, a cadence finer than 30 s) is formatted by numpy.
    """

    MAX_DAYS = 8
    MAX_SLOTS = 2_880  # 30 s cadence: finer grids would make tables large

    def __init__(self, cadence: np.timedelta64) -> None:
        step_ns = int(cadence.astype("timedelta64[ns]").astype(np.int64))
        step_s, rem = divmod(step_ns, 10**9)
        usable = step_ns > 0 and rem == 0 and 86_400 % step_s == 0 and 86_400 // step_s <= self.MAX_SLOTS
        self._step_ns, self._step_s = (step_ns, step_s) if usable else (0, 0)
        self._days: dict[int, list[str]] = {}  # days since the epoch -> the day's slot strings
        self._lock = threading.Lock()  # misses only: the table is built once per day

    def __call__(self, ts: np.ndarray) -> list[str]:
        n = ts.shape[0]
        if not self._step_ns or n == 0 or ts.dtype != _NS:
            return iso_seconds(ts)
        ns = ts.view(np.int64).tolist()  # Python ints: for a forecast's 30 stamps cheaper than 3 numpy calls
        first, step = ns[0], self._step_ns
        if first % step or ns != list(range(first, first + n * step, step)):
            return iso_seconds(ts)
        day, second = divmod(first // 10**9, 86_400)  # floor division: pre-1970 days too
        slot = second // self._step_s
        out: list[str] = []
        while len(out) < n:
            out += self._table(day)[slot : slot + n - len(out)]
            day, slot = day + 1, 0
        return out

    def _table(self, day: int) -> list[str]:
        table = self._days.get(day)
        if table is None:
            with self._lock:
                if len(self._days) >= self.MAX_DAYS:
                    self._days.pop(next(iter(self._days)))  # the oldest day
                date = f"{np.datetime64(day, 'D')}T"
                table = self._days[day] = [
                    f"{date}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(0, 86_400, self._step_s)
                ]
        return table


@dataclass(frozen=True)
class Forecast:
    """Future timestamps and target values (original units), with quantiles when the model has them."""

    timestamps: np.ndarray  # datetime64[ns], len h
    targets: tuple[str, ...]
    values: np.ndarray  # (h, len(targets)) float64
    format_ts: Callable[[np.ndarray], list[str]] = field(default=iso_seconds, repr=False, compare=False)
    quantile_levels: tuple[float, ...] = ()
    quantiles: np.ndarray | None = field(default=None, compare=False)  # (h, len(targets), len(levels)) float64

    def records(self, time_key: str = "ts") -> list[dict[str, Any]]:
        """Row-oriented JSON-ready records with ISO-8601 timestamps."""
        iso = self.format_ts(self.timestamps)
        columns = self.values.T.tolist()
        if len(self.targets) == 1:  # the common case; a dict display is ~3x faster than dict(zip())
            (name,), (values,) = self.targets, columns
            return [{time_key: t, name: v} for t, v in zip(iso, values)]
        keys = (time_key, *self.targets)
        return [dict(zip(keys, row)) for row in zip(iso, *columns)]

    def quantile_forecast(self, position: int) -> Forecast:
        """The forecast of the quantile at ``position`` in quantile_levels, as a point forecast of its own."""
        assert self.quantiles is not None, "the model forecasts no quantiles"
        return Forecast(self.timestamps, self.targets, self.quantiles[:, :, position], self.format_ts)

    def records_json(self, time_key: str = "ts") -> bytes:
        """``orjson.dumps(self.records(time_key))``, byte for byte, spliced from one dump of all values."""
        return self.records_json_with(time_key)[0]

    def records_json_with(self, time_key: str = "ts", quantiles: Sequence[int] = ()) -> list[bytes]:
        """records_json of the point forecast, then of the quantile forecast at each position in ``quantiles``.

        Why native: 30 dicts of Python floats, serialised, were a third of a /predict response's own
        CPU time. Here orjson formats every value of every forecast from one array at once, the
        timestamps are formatted once, and _records_json.c copies both into each forecast's records
        (8.8 -> 6.1 us a 30-step answer against splicing Python lists; tests compare with orjson.dumps
        of the records, non-finite values and awkward names included).
        """
        n, targets = len(self.timestamps), len(self.targets)
        if not n or not targets:
            return [orjson.dumps(f.records(time_key)) for f in (self, *map(self.quantile_forecast, quantiles))]
        assert self.quantiles is not None or not quantiles, "the model forecasts no quantiles"
        stacked = self.values.T  # (targets, n), then each quantile's below it
        if quantiles:
            stacked = np.concatenate([stacked, *(self.quantiles[:, :, q].T for q in quantiles)])  # type: ignore[index]
        dumped = orjson.dumps(np.ascontiguousarray(stacked, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)
        names = tuple(orjson.dumps(name) for name in self.targets)
        return splice(dumped, self.format_ts(self.timestamps), orjson.dumps(time_key), names)


@dataclass(frozen=True)
class ModelInput:
    """One validated window; scaling and calendar features are computed per batch, not per request."""

    window: np.ndarray  # (W, F) float64, original units
    last_ns: int  # timestamp of the window's last row, ns since the epoch
    history: np.ndarray | None = None  # (K,) float32 history features in model units (None: the model reads none)
    # The first target (original units) of a series too short to reach the day before (a 30-row request):
    # its window-only features are computed for the whole batch at once (Forecaster.predict_inputs).
    short: np.ndarray | None = None


class Forecaster:
    """A trained network plus its spec; stateless and safe to call from threads."""

    def __init__(self, spec: ModelSpec, net: Net) -> None:
        self.spec = spec
        self.net = net.eval()  # the trainable module (state dicts); serving runs the traced forms below
        self._mean, self._scale = spec.scaler.params(spec.features)
        self._log_columns = spec.log_index
        self._y_mean, self._y_scale = (float(v[0]) for v in spec.scaler.params(spec.targets[:1]))
        self._cadence = spec.cadence  # a property that builds a timedelta64: not per request
        self.iso = GridIso(spec.cadence)
        # Window and horizon timestamps relative to the last row: frames are regular by construction.
        step_ns = int(spec.cadence.astype("timedelta64[ns]").astype(np.int64))
        self._offsets_ns = np.arange(1 - spec.window, spec.horizon + 1, dtype=np.int64) * step_ns
        self._future_ns = self._offsets_ns[spec.window :]
        self._history_rows = spec.history_rows  # spec properties: computed once, not per request
        self._short_below = spec.rows_per_day - spec.window  # a series shorter reaches no slot of the day before
        # None: a calendar feature needs numpy
        self._graph: Callable[..., torch.Tensor] | None = serving_graph(self.net, spec, self._offsets_ns)
        # The numpy path's traced network, made on first use: with a graph it is never used, and tracing it for
        # every model doubled a model's load time and memory (~0.9 MB a model: 1,000 champions in one worker).
        self._run: torch.jit.ScriptModule | None = None

    def use_private_graph(self) -> None:
        """Serve from a graph traced for this model alone (faster calls, ~1.7 MB): for the default and global models."""
        graph = private_graph(self.net, self.spec, self._offsets_ns)
        if graph is not None:
            self._graph = graph

    @classmethod
    def from_state(cls, spec: ModelSpec, state: dict[str, torch.Tensor]) -> Forecaster:
        """Rebuild from a state dict saved by training."""
        net = build_net(spec)
        net.load_state_dict(state)
        return cls(spec, net)

    def check_horizon(self, horizon: int | None) -> int:
        """Validate a requested horizon, defaulting to the model's."""
        h = self.spec.horizon if horizon is None else int(horizon)
        if h < 1 or h > self.spec.horizon:
            raise HorizonTooLong(
                f"inference_length must be between 1 and {self.spec.horizon} (the model's horizon); got {h}"
            )
        return h

    def check_quantiles(self, requested: Sequence[float] | None) -> tuple[int, ...]:
        """Positions in spec.quantiles of the requested levels; InvalidInput naming the trained ones otherwise."""
        if not requested:
            return ()
        trained = [round(q, 6) for q in self.spec.quantiles]
        unknown = [q for q in requested if round(float(q), 6) not in trained]
        if unknown:
            offer = f"this model forecasts {trained}" if trained else "this model forecasts no quantiles"
            raise InvalidInput(f"quantiles {unknown} were not trained; {offer}")
        return tuple(dict.fromkeys(trained.index(round(float(q), 6)) for q in requested))

    def make_input(self, frame: PreparedFrame, history: np.ndarray | None = None) -> ModelInput:
        """Check the frame against the model and take its last W rows of the model's features.

        A model that reads history takes it from the frame's first target, or from ``history`` (the
        target's values up to the frame's last row, e.g. kept by the service for an identifier).
        """
        spec = self.spec
        if len(frame) < spec.window:
            raise NotEnoughRows(f"need at least {spec.window} rows (the model's input window); got {len(frame)}")
        if frame.cadence != self._cadence:
            raise InvalidInput(
                f"data cadence is {frame.cadence.astype('timedelta64[s]')} but the model was trained on "
                f"{spec.cadence.astype('timedelta64[s]')} steps"
            )
        window = frame.select(spec.features)[-spec.window :]
        last_ns = int(frame.timestamps.view(np.int64)[-1])
        if not spec.history_days:
            return ModelInput(window, last_ns)
        series = (frame.column(spec.targets[0]) if history is None else history)[-self._history_rows :]
        if series.shape[0] < self._short_below:
            # Per request these few features cost ~8 us of the event loop's time; per batch a few numpy calls.
            return ModelInput(window, last_ns, short=np.asarray(series, dtype=np.float64))
        return ModelInput(window, last_ns, self.history_of(series))

    def target_space(self, values: np.ndarray) -> np.ndarray:
        """Values of the first target (original units) in the network's scaled units."""
        return self._target_space(np.asarray(values, dtype=np.float64))

    def history_of(self, series: np.ndarray) -> np.ndarray:
        """(K,) history features of one series of the first target (original units) ending at the window's last row."""
        spec = self.spec
        y = self._target_space(np.asarray(series, dtype=np.float64))
        short = window_only_features(y[None], window=spec.window, horizon=spec.horizon, per_day=spec.rows_per_day)
        if short is not None:
            return short[0]
        return history_features(
            y,
            np.array([y.shape[0]]),
            window=spec.window,
            horizon=spec.horizon,
            per_day=spec.rows_per_day,
            days=spec.history_days,
            halfwidth=spec.profile_halfwidth,
        )[0]

    def _target_space(self, y: np.ndarray) -> np.ndarray:
        """The first target as the network reads it: log when the model is log-space, then scaled."""
        if self.spec.log_targets:
            y = np.log(np.maximum(y, LOG_FLOOR))
        return (y - self._y_mean) / self._y_scale

    def future_timestamps(self, item: ModelInput) -> np.ndarray:
        """The H timestamps a window's forecast is for."""
        return (item.last_ns + self._future_ns).view("datetime64[ns]")

    def predict_inputs(self, inputs: Sequence[ModelInput]) -> np.ndarray:
        """One batched forward: (B, H, targets, outputs) in original units (outputs: the point, then each quantile)."""
        raw = np.stack([i.window for i in inputs])  # (B, W, F); stack and fromiter keep the GIL
        last = np.fromiter((i.last_ns for i in inputs), np.int64, len(inputs))
        if self.spec.history_days:
            history = self.history_batch(inputs)
        else:
            history = np.zeros((len(inputs), 0), dtype=np.float32)
        if self._graph is None:
            return self._predict_numpy(raw, last, history)
        with torch.inference_mode():
            return self._graph(torch.from_numpy(raw), torch.from_numpy(last), torch.from_numpy(history)).numpy()

    def history_batch(self, inputs: Sequence[ModelInput]) -> np.ndarray:
        """(B, K) history features: those make_input computed, and the short series' all at once per length."""
        spec = self.spec
        out = np.empty((len(inputs), history_size(spec.horizon)), dtype=np.float32)
        short: dict[int, list[int]] = {}  # series length -> positions in the batch
        for j, item in enumerate(inputs):
            if item.short is None:
                out[j] = item.history
            else:
                short.setdefault(item.short.shape[0], []).append(j)
        for rows in short.values():
            y = self._target_space(np.stack([inputs[j].short for j in rows]))  # type: ignore[misc]  # short is set
            features = window_only_features(y, window=spec.window, horizon=spec.horizon, per_day=spec.rows_per_day)
            assert features is not None, "make_input defers only series too short for the day before"
            out[rows] = features
        return out

    def _predict_numpy(self, raw: np.ndarray, last: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The same forward with scaling and calendar features in numpy (any time feature)."""
        spec, w = self.spec, self.spec.window
        grid = last[:, None] + self._offsets_ns
        calendar = time_features(grid.reshape(-1).view("datetime64[ns]"), spec.time_features)
        calendar = calendar.reshape(raw.shape[0], grid.shape[1], 2 * len(spec.time_features))
        if self._log_columns:
            raw = raw.copy()
            raw[:, :, self._log_columns] = np.log(np.maximum(raw[:, :, self._log_columns], LOG_FLOOR))
        scaled = ((raw - self._mean) / self._scale).astype(np.float32)
        inputs = (
            torch.from_numpy(np.concatenate([scaled, calendar[:, :w]], axis=2)),
            torch.from_numpy(np.ascontiguousarray(calendar[:, w:])),
            torch.from_numpy(history),
        )
        held = held_by_cpp(inputs)  # no GIL waits inside the call (graph.held_by_cpp)
        with torch.inference_mode():
            if self._run is None:  # two threads may both trace once: the same result, no harm
                self._run = traced_net(self.net, spec)
            out = self._run(*inputs).numpy().astype(np.float64) + spec.output_offsets
        del held
        mean, scale = spec.scaler.params(spec.targets)
        out = out * scale[:, None] + mean[:, None]
        if spec.quantiles:
            out[..., 1:] = np.sort(out[..., 1:], axis=-1)  # quantiles never cross
        return np.exp(out) if spec.log_targets else out

    def forecast_of(self, item: ModelInput, values: np.ndarray, h: int) -> Forecast:
        """The Forecast of one input from its (H, targets, outputs) values, cut to ``h`` steps."""
        quantiles = values[:h, :, 1:] if self.spec.quantiles else None
        return Forecast(
            self.future_timestamps(item)[:h],
            self.spec.targets,
            values[:h, :, 0],
            self.iso,
            self.spec.quantiles,
            quantiles,
        )

    def forecast_batch(self, frames: Sequence[PreparedFrame], horizon: int | None = None) -> list[Forecast]:
        """Forecast many frames with one forward pass."""
        h = self.check_horizon(horizon)
        inputs = [self.make_input(f) for f in frames]
        values = self.predict_inputs(inputs)
        return [self.forecast_of(i, v, h) for i, v in zip(inputs, values)]

    def forecast(self, frame: PreparedFrame, horizon: int | None = None) -> Forecast:
        """Forecast one frame: timestamps strictly after its last row, at its cadence."""
        return self.forecast_batch([frame], horizon)[0]
