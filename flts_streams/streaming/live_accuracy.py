"""Live accuracy of an identifier's forecasts: those issued for its claims, scored once against later actuals.

One value per identifier in the forecast_accuracy table: the last forecasts issued (origin, model run,
values, interval, the actuals at issue time for persistence) and rolling sums per model run and horizon
bucket, in 15-minute bins of the actuals' own timestamps, 24 hours deep. Each forecast keeps the index of
its next unscored step, so a claim processed twice (at-least-once delivery) scores nothing twice.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.forecast import Forecast
from flts_streams.forecasting.frame import PreparedFrame

BIN_NS = 15 * 60 * 1_000_000_000
WINDOW_BINS = 96  # 24 hours of bins
HORIZON_EDGES = (10, 20, 30)  # steps ahead: buckets 1-10, 11-20, 21-30, 31+
# One row of sums: steps scored, steps with an interval, actuals inside it, then per target the sum of
# absolute errors and the sum of persistence's absolute errors.
_STEPS, _WITH_INTERVAL, _INSIDE, _FIRST_SUM = 0, 1, 2, 3
_MAGIC = b"LA01"
_LEN = struct.Struct("<4sI")


_EDGES = np.array(HORIZON_EDGES)


def horizon_bucket(step: int) -> str:
    """The bucket label of a forecast step (1 = the first step ahead)."""
    low = 1
    for edge in HORIZON_EDGES:
        if step <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}+"


_BUCKETS = tuple(horizon_bucket(edge) for edge in (*HORIZON_EDGES, HORIZON_EDGES[-1] + 1))  # by searchsorted position


@dataclass
class IssuedForecast:
    """A forecast as issued: what it said, and what persistence would have said, from ``origin_ns``."""

    run_id: str
    origin_ns: int  # timestamp of the last input row; step h (0-based) is for origin + (h + 1) * step
    step_ns: int
    values: np.ndarray  # (steps, targets) float32
    last: np.ndarray  # (targets,) the actuals at the origin: persistence's forecast
    interval: np.ndarray | None = None  # (2, steps) float32: lowest and highest quantile of the first target
    scored: int = 0  # steps before this one are scored (or were never covered by an actual)
    actual: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))  # (steps,) first target; NaN: none

    def __post_init__(self) -> None:
        """Actuals start unknown."""
        if len(self.actual) != len(self.values):
            self.actual = np.full(len(self.values), np.nan, dtype=np.float32)


def issued_forecast(forecast: Forecast, run_id: str, origin_ns: int, last: np.ndarray) -> IssuedForecast:
    """What a forecast said from ``origin_ns`` (where the actuals were ``last``), with its widest quantile interval."""
    interval = None
    if forecast.quantiles is not None and len(forecast.quantile_levels) >= 2:
        lowest, highest = int(np.argmin(forecast.quantile_levels)), int(np.argmax(forecast.quantile_levels))
        interval = forecast.quantiles[:, 0, [lowest, highest]].T.astype(np.float32)
    step = int(forecast.timestamps.astype("datetime64[ns]").view(np.int64)[0] - origin_ns)
    values = forecast.values.astype(np.float32)
    return IssuedForecast(run_id, origin_ns, step, values, np.asarray(last, dtype=np.float32), interval)


def issued_from_frame(forecast: Forecast, run_id: str, frame: PreparedFrame) -> IssuedForecast | None:
    """A forecast made from ``frame`` as issued: from its last row (None when the frame lacks a target)."""
    if not set(forecast.targets) <= set(frame.columns):
        return None
    origin = int(frame.timestamps.astype("datetime64[ns]").view(np.int64)[-1])
    last = np.array([frame.column(t)[-1] for t in forecast.targets], dtype=np.float32)
    return issued_forecast(forecast, run_id, origin, last)


class HeldForecasts:
    """Forecasts answered to GET /predict/{id}, held in memory until the identifier's next claim remembers them.

    Bounded: the newest ``per_identifier`` per identifier, the ``identifiers`` most recently asked for.
    Lost on restart: they are a side line (the claims' own forecasts are in the table).
    """

    def __init__(self, per_identifier: int, identifiers: int = 10_000) -> None:
        self.per_identifier = per_identifier
        self.identifiers = identifiers
        self._held: dict[str, list[IssuedForecast]] = {}

    def add(self, identifier: str, forecast: IssuedForecast) -> None:
        """Hold a forecast (the same origin and run again replaces it)."""
        key = (forecast.origin_ns, forecast.run_id)
        held = [f for f in self._held.pop(identifier, []) if (f.origin_ns, f.run_id) != key]
        self._held[identifier] = [*held, forecast][-self.per_identifier :]  # re-inserted: the newest identifier
        while len(self._held) > self.identifiers:
            del self._held[next(iter(self._held))]

    def take(self, identifier: str) -> list[IssuedForecast]:
        """The forecasts held for ``identifier``, no longer held."""
        return self._held.pop(identifier, [])


@dataclass
class Scored:
    """Totals scored for one model run and horizon bucket by one update (for the Prometheus counters)."""

    run_id: str
    bucket: str
    steps: int
    with_interval: int
    inside: int
    abs_error: float  # first target
    persistence_abs_error: float


@dataclass
class LiveAccuracy:
    """An identifier's issued forecasts and rolling score sums."""

    targets: tuple[str, ...]
    forecasts: list[IssuedForecast] = field(default_factory=list)
    sums: dict[tuple[str, str], dict[int, np.ndarray]] = field(default_factory=dict)  # (run, bucket) -> bin -> row
    newest_bin: int = 0
    requested_at: float | None = None  # wall-clock time of the last training request for the identifier

    def score(self, stamps_ns: np.ndarray, actuals: np.ndarray) -> list[Scored]:
        """Score every step of the kept forecasts that ``stamps_ns`` covers with ``actuals`` (rows, targets)."""
        totals: dict[tuple[str, str], Scored] = {}
        for forecast in self.forecasts:
            self._score_one(forecast, stamps_ns, actuals, totals)
        self._forget_old_bins()
        return list(totals.values())

    def _score_one(
        self, f: IssuedForecast, stamps: np.ndarray, actuals: np.ndarray, totals: dict[tuple[str, str], Scored]
    ) -> None:
        steps = len(f.values)
        if f.scored >= steps or f.origin_ns + (f.scored + 1) * f.step_ns > stamps[-1]:
            return  # done, or its next step has not come yet: the common case, kept cheap
        due = f.origin_ns + (np.arange(f.scored, steps, dtype=np.int64) + 1) * f.step_ns
        due = due[due <= stamps[-1]]  # steps whose time has come; those the frame skips are never scored
        at = np.minimum(np.searchsorted(stamps, due), len(stamps) - 1)
        found = (stamps[at] == due) & np.isfinite(actuals[at]).all(axis=1)  # a blank actual scores nothing
        step_index = np.arange(f.scored, f.scored + len(due))[found]
        f.scored += len(due)
        if not len(step_index):
            return
        actual = actuals[at[found]].astype(np.float64)  # (k, targets)
        f.actual[step_index] = actual[:, 0]
        sums = np.concatenate([np.abs(actual - f.values[step_index]), np.abs(actual - f.last)], axis=1)
        inside = None
        if f.interval is not None:
            low, high = f.interval[:, step_index]
            inside = (low <= actual[:, 0]) & (actual[:, 0] <= high)
        self._add(f.run_id, step_index, due[found] // BIN_NS, sums, inside, totals)

    def _add(
        self,
        run_id: str,
        step_index: np.ndarray,
        bins: np.ndarray,
        sums: np.ndarray,
        inside: np.ndarray | None,
        totals: dict[tuple[str, str], Scored],
    ) -> None:
        """Add scored steps (their absolute errors, persistence's, interval hits) to their rows and the totals.

        Steps come in ascending order, so each (horizon bucket, bin) they touch is one contiguous run of them:
        summed with one reduceat each, not a mask per pair (this ran once per claim, for every due forecast).
        """
        buckets = np.searchsorted(_EDGES, step_index + 1)  # position of each step's bucket in _BUCKETS
        starts = np.flatnonzero(np.diff(buckets, prepend=-1) | np.diff(bins, prepend=bins[0] - 1))
        counts = np.diff(starts, append=len(step_index)).tolist()
        group_sums = np.add.reduceat(sums, starts, axis=0)
        hits = np.add.reduceat(inside.astype(np.int64), starts).tolist() if inside is not None else None
        n = len(self.targets)
        for g, (position, bin_id) in enumerate(zip(buckets[starts].tolist(), bins[starts].tolist())):
            bucket, count = _BUCKETS[position], counts[g]
            row = self._row(run_id, bucket, bin_id)
            row[_STEPS] += count
            row[_FIRST_SUM:] += group_sums[g]
            total = totals.setdefault((run_id, bucket), Scored(run_id, bucket, 0, 0, 0, 0.0, 0.0))
            total.steps += count
            total.abs_error += float(group_sums[g, 0])
            total.persistence_abs_error += float(group_sums[g, n])
            if hits is not None:
                row[_WITH_INTERVAL] += count
                row[_INSIDE] += hits[g]
                total.with_interval += count
                total.inside += hits[g]

    def _row(self, run_id: str, bucket: str, bin_id: int) -> np.ndarray:
        self.newest_bin = max(self.newest_bin, bin_id)
        bins = self.sums.setdefault((run_id, bucket), {})
        if bin_id not in bins:
            bins[bin_id] = np.zeros(_FIRST_SUM + 2 * len(self.targets))
        return bins[bin_id]

    def _forget_old_bins(self) -> None:
        oldest = self.newest_bin - WINDOW_BINS + 1
        for key in list(self.sums):
            if min(self.sums[key], default=oldest - 1) >= oldest:
                continue  # nothing to forget: most claims (a min is a fifth of rebuilding the dict)
            bins = {b: row for b, row in self.sums[key].items() if b >= oldest}
            if bins:
                self.sums[key] = bins
            else:
                del self.sums[key]

    def issue(self, forecast: IssuedForecast, keep: int, replace: bool = True) -> None:
        """Remember a forecast; the same origin and run again replaces it (a claim processed twice), or with
        ``replace`` False is left out (a cached forecast of what a claim forecast already holds)."""
        origin, run_id = forecast.origin_ns, forecast.run_id
        same = {id(f) for f in self.forecasts if f.origin_ns == origin and f.run_id == run_id}
        if same:  # rare (a redelivery); the common case costs one pass over the kept forecasts
            if not replace:
                return
            self.forecasts = [f for f in self.forecasts if id(f) not in same]
        self.forecasts.append(forecast)
        if len(self.forecasts) > 1 and self.forecasts[-2].origin_ns > origin:
            self.forecasts.sort(key=lambda f: f.origin_ns)  # an older origin than the newest kept
        del self.forecasts[:-keep]

    def scored_through(self) -> int | None:
        """Timestamp of the latest step scored or passed, None before any."""
        done = [f.origin_ns + f.scored * f.step_ns for f in self.forecasts if f.scored]
        return max(done) if done else None

    def error_over_time(self) -> list[dict[str, object]]:
        """Per model run and 15-minute bin of actuals (all horizons): steps, MAE and persistence MAE, oldest first."""
        per: dict[tuple[str, int], np.ndarray] = {}
        for (run_id, _bucket), bins in self.sums.items():
            for bin_id, row in bins.items():
                per[(run_id, bin_id)] = per.get((run_id, bin_id), 0) + row
        n = len(self.targets)
        return [
            {
                "run_id": run_id,
                "bin_start": _iso(bin_id * BIN_NS),
                "steps": int(row[_STEPS]),
                "mae": float(row[_FIRST_SUM] / row[_STEPS]),
                "persistence_mae": float(row[_FIRST_SUM + n] / row[_STEPS]),
            }
            for (run_id, bin_id), row in sorted(per.items(), key=lambda kv: (kv[0][1], kv[0][0]))
            if row[_STEPS]
        ]

    def window(self, hours: float) -> dict[tuple[str, str], np.ndarray]:
        """Summed rows per (run, bucket) over the last ``hours`` of actuals."""
        oldest = self.newest_bin - int(hours * 3_600_000_000_000 // BIN_NS) + 1
        out = {}
        for key, bins in self.sums.items():
            rows = [row for b, row in bins.items() if b >= oldest]
            if rows:
                out[key] = np.sum(rows, axis=0)
        return out

    def summary(self, hours: float) -> list[dict[str, object]]:
        """JSON-ready figures per model run and horizon bucket over the last ``hours``."""
        return [
            {"run_id": run_id, "horizon": bucket, **figures(row, self.targets)}
            for (run_id, bucket), row in sorted(self.window(hours).items(), key=lambda kv: _bucket_order(kv[0][1]))
        ]


WINDOWS_H = (1, 24)  # the windows reported: last hour and last day of actuals


def report(identifier: str, acc: LiveAccuracy, detail: bool = False) -> dict[str, object]:
    """GET /accuracy/{identifier}: figures per run and horizon over the last hour and day; the forecasts kept.

    With ``detail``, also each kept forecast against its actuals (first target) and the error per bin.
    """
    body: dict[str, object] = {
        "identifier": identifier,
        "targets": list(acc.targets),
        "scored_through": _iso(acc.scored_through()),
        "windows": {f"{h}h": acc.summary(h) for h in WINDOWS_H},
        "forecasts": [
            {"run_id": f.run_id, "issued_for": _iso(f.origin_ns), "steps": len(f.values), "scored_steps": f.scored}
            for f in acc.forecasts
        ],
    }
    if detail:
        body["series"] = [_series(f) for f in acc.forecasts]
        body["error_over_time"] = acc.error_over_time()
    return body


def _series(f: IssuedForecast) -> dict[str, object]:
    """A kept forecast of the first target, its interval and the actuals scored so far (null: not yet)."""
    return {
        "run_id": f.run_id,
        "issued_for": _iso(f.origin_ns),
        "step_s": f.step_ns / 1e9,
        "forecast": f.values[:, 0].tolist(),
        "actual": [None if np.isnan(a) else float(a) for a in f.actual],
        "interval": None if f.interval is None else f.interval.tolist(),
    }


def overview(books: Iterable[tuple[str, LiveAccuracy]], worst: int, hours: float = 24) -> dict[str, object]:
    """GET /accuracy: the identifiers with the lowest skill over ``hours``, and figures per model run."""
    ranked = []
    per_run: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    count = 0
    for identifier, acc in books:
        count += 1
        rows = acc.window(hours)
        if not rows:
            continue
        total = np.sum(list(rows.values()), axis=0)
        ranked.append(
            {"identifier": identifier, **figures(total, acc.targets), "run_ids": sorted({r for r, _ in rows})}
        )
        for (run_id, _bucket), row in rows.items():
            targets, summed = per_run.get(run_id, (acc.targets, np.zeros_like(row)))
            if targets == acc.targets:  # one run forecasts one set of targets
                per_run[run_id] = (targets, summed + row)
    ranked.sort(key=lambda r: (r["skill"] is None, r["skill"]))
    return {
        "window_hours": hours,
        "identifiers": count,
        "scored_identifiers": len(ranked),
        "worst": ranked[:worst],
        "models": [{"run_id": run_id, **figures(row, targets)} for run_id, (targets, row) in sorted(per_run.items())],
    }


def _iso(ns: int | None) -> str | None:
    return None if ns is None else str(np.datetime64(ns, "ns").astype("datetime64[s]"))


def _bucket_order(bucket: str) -> int:
    return int(bucket.split("-")[0].rstrip("+"))


def figures(row: np.ndarray, targets: tuple[str, ...]) -> dict[str, object]:
    """Steps, MAE and persistence MAE per target, skill of the first target, interval coverage."""
    steps = row[_STEPS]
    n = len(targets)
    mae = row[_FIRST_SUM : _FIRST_SUM + n] / steps
    persistence = row[_FIRST_SUM + n :] / steps
    return {
        "steps": int(steps),
        "mae": dict(zip(targets, mae.tolist())),
        "persistence_mae": dict(zip(targets, persistence.tolist())),
        "skill": skill(mae[0], persistence[0]),
        "coverage": float(row[_INSIDE] / row[_WITH_INTERVAL]) if row[_WITH_INTERVAL] else None,
    }


def first_target(row: np.ndarray, targets: int) -> tuple[int, float, float]:
    """Steps, MAE and persistence MAE of the first target in a summed row (``targets``: how many)."""
    steps = int(row[_STEPS])
    return steps, float(row[_FIRST_SUM] / steps), float(row[_FIRST_SUM + targets] / steps)


def skill(mae: float, persistence_mae: float) -> float | None:
    """1 - MAE / persistence's MAE: above 0 the model beats persistence, 1 is perfect."""
    return float(1.0 - mae / persistence_mae) if persistence_mae > 0 else None


def encode_accuracy(acc: LiveAccuracy) -> bytes:
    """Table value: a JSON header with the shapes, then the arrays (float32 forecasts, float64 sums)."""
    fs = acc.forecasts
    forecasts = [[f.run_id, f.origin_ns, f.step_ns, len(f.values), f.scored, f.interval is not None] for f in fs]
    groups = [(key, sorted(bins)) for key, bins in acc.sums.items()]
    sums = [[run_id, bucket, ids] for (run_id, bucket), ids in groups]
    header = orjson.dumps(
        {
            "targets": acc.targets,
            "newest_bin": acc.newest_bin,
            "requested_at": acc.requested_at,
            "forecasts": forecasts,
            "sums": sums,
        }
    )
    # Each array's bytes joined: a third of the time of concatenating them first (re-encoded for every claim).
    f4 = "<f4"
    arrays = [
        *[f.values.astype(f4, copy=False).tobytes() for f in fs],  # every forecast's (steps, targets), in turn
        *[f.last.astype(f4, copy=False).tobytes() for f in fs],
        *[f.interval.astype(f4, copy=False).tobytes() for f in fs if f.interval is not None],
        *[f.actual.astype(f4, copy=False).tobytes() for f in fs],
        *(np.concatenate([acc.sums[key][i] for i in ids]).astype("<f8", copy=False).tobytes() for key, ids in groups),
    ]
    return _LEN.pack(_MAGIC, len(header)) + header + b"".join(arrays)


def decode_accuracy(payload: bytes) -> LiveAccuracy:
    """Inverse of encode_accuracy; InvalidInput for anything else."""
    try:
        return _decode(payload)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise InvalidInput(f"not a forecast_accuracy value: {exc}") from None


def _decode(payload: bytes) -> LiveAccuracy:
    magic, size = _LEN.unpack_from(payload)
    if magic != _MAGIC:
        raise InvalidInput("not a forecast_accuracy value")
    head = orjson.loads(payload[_LEN.size : _LEN.size + size])
    reader = _Reader(payload, _LEN.size + size)
    targets = tuple(head["targets"])
    n = len(targets)
    acc = LiveAccuracy(targets, newest_bin=head["newest_bin"], requested_at=head["requested_at"])
    meta = head["forecasts"]
    steps = [m[3] for m in meta]
    values = reader.take("<f4", sum(steps) * n)
    lasts = reader.take("<f4", len(meta) * n).reshape(len(meta), n)
    intervals = reader.take("<f4", sum(2 * m[3] for m in meta if m[5]))
    actuals = reader.take("<f4", sum(steps)).copy()  # written to as steps are scored
    per_values = _pieces(values, steps, lambda s: (s, n))
    per_actual = _pieces(actuals, steps, lambda s: (s,))
    per_interval = iter(_pieces(intervals, [m[3] for m in meta if m[5]], lambda s: (2, s)))
    for i, (run_id, origin, step, _, scored, has_interval) in enumerate(meta):
        interval = next(per_interval) if has_interval else None
        acc.forecasts.append(
            IssuedForecast(run_id, origin, step, per_values[i], lasts[i], interval, scored, per_actual[i])
        )
    width = _FIRST_SUM + 2 * n
    for run_id, bucket, ids in head["sums"]:
        rows = reader.take("<f8", len(ids) * width).reshape(len(ids), width).copy()
        acc.sums[(run_id, bucket)] = dict(zip(ids, rows))
    if reader.offset != len(payload):
        raise InvalidInput("forecast_accuracy value has trailing bytes")
    return acc


def _pieces(flat: np.ndarray, steps: list[int], shape: Callable[[int], tuple[int, ...]]) -> list[np.ndarray]:
    """``flat`` cut into consecutive views of ``shape(s)`` for each forecast's steps ``s``.

    Forecasts of one model have equal steps: then one reshape, not one slice and reshape each (decoded per claim).
    """
    if steps and steps.count(steps[0]) == len(steps):
        return list(flat.reshape(len(steps), *shape(steps[0])))
    out, at = [], 0
    for s in steps:
        size = math.prod(shape(s))
        out.append(flat[at : at + size].reshape(shape(s)))
        at += size
    return out


class _Reader:
    """Consecutive arrays out of one buffer."""

    def __init__(self, payload: bytes, offset: int) -> None:
        self.payload = payload
        self.offset = offset

    def take(self, dtype: str, count: int) -> np.ndarray:
        array = np.frombuffer(self.payload, dtype=dtype, count=count, offset=self.offset)
        self.offset += array.nbytes
        return array
