"""The usual /predict body parsed natively (flts_streams/serving/_native_body.c) into numpy columns, or None.

The native parser takes only a strict subset of JSON (no escapes, no unknown or repeated keys,
equal-length arrays of only numbers or only zone-less ISO-8601 timestamps) and gives up on anything
else, so the Python path (orjson, then the schema) keeps deciding every unusual body and naming
what is wrong. What it accepts it reads exactly as that path does
(tests/test_flts_streams/test_serving/test_native_body.py).
Why: orjson turned the 7 KB body into ~400 Python objects that the frame code then converted again;
that was the largest part of a request's own CPU time (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from flts_streams.forecasting.frame import TIME_COLUMNS, PreparedFrame
from flts_streams.serving import _native_body

TIMESTAMPS = np.dtype("datetime64[ns]")


@dataclass(frozen=True, slots=True)
class NativeColumns:
    """The data of a natively parsed body: numeric columns as one matrix, timestamp columns apart."""

    body: bytes  # for the Python path, when this is not the clean, regular case
    names: tuple[str, ...]  # numeric columns, in body order
    values: np.ndarray  # (rows, len(names)) float64, all finite, read-only
    times: dict[str, tuple[np.ndarray, int]]  # timestamp column -> (datetime64[ns] values, regular step in ns or 0)
    rows: int

    def regular_frame(self, required: Sequence[str], index_col: str | None) -> PreparedFrame | None:
        """The frame of ``required`` when the time column rises by one step throughout; else None.

        None sends the body through the full checks (as lists), which name what is wrong; the
        time column is chosen as find_time_column chooses it.
        """
        time_col = index_col or next((c for c in TIME_COLUMNS if c in self.times or c in self.names), None)
        found = self.times.get(time_col) if time_col is not None else None
        if found is None or not found[1] or not required:
            return None
        ts, step = found
        if tuple(required) == self.names:
            values = self.values  # the model's features in its order: the usual request
        elif all(c in self.names for c in required):
            values = self.values[:, [self.names.index(c) for c in required]]
        else:
            return None
        return PreparedFrame(ts, tuple(required), values, np.timedelta64(step, "ns"))


class NativeBody(NamedTuple):
    """The body's fields and, when it has data, its columns."""

    identifier: str | None
    index_col: str | None
    inference_length: int | None
    data: NativeColumns | None


def parse_body(body: bytes) -> NativeBody | None:
    """The body as NativeBody, or None when it is not the usual shape."""
    parsed = _native_body.parse(body)
    if parsed is None:
        return None
    identifier, index_col, horizon, data = parsed
    if data is None:
        return NativeBody(identifier, index_col, horizon, None)
    names, values, time_names, times, steps, rows = data
    stamps = np.frombuffer(times, TIMESTAMPS).reshape(len(time_names), rows)
    columns = NativeColumns(
        body,
        names,
        np.frombuffer(values, np.float64).reshape(rows, len(names)),
        {name: (stamps[i], step) for i, (name, step) in enumerate(zip(time_names, steps))},
        rows,
    )
    return NativeBody(identifier, index_col, horizon, columns)
