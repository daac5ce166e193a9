"""The recent values of an identifier's first target, kept between claims for models that read history.

One float32 series on the cadence grid (7 days of 2-minute rows: 5,040 values, ~20 KB a value in the
target_history table), extended by each claim's frame: rows the frame repeats are taken from the frame,
a short gap between the two is filled linearly, a long one (or a change of cadence or target) starts the
series again from the frame. A frame older than the series changes nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.frame import PreparedFrame

MAX_GAP_ROWS = 30  # missing rows between the kept series and a new frame that are interpolated (1 h at 2 min)
_HEADER = struct.Struct("<4sqqiH")  # magic, last timestamp ns, step ns, values, column name bytes
_MAGIC = b"TH01"


@dataclass(frozen=True)
class TargetHistory:
    """Values of ``column`` on a regular grid ending at ``last_ns``."""

    column: str
    last_ns: int
    step_ns: int
    values: np.ndarray  # float32, oldest first

    @property
    def first_ns(self) -> int:
        """Timestamp of the oldest value."""
        return self.last_ns - (len(self.values) - 1) * self.step_ns


def extend(old: TargetHistory | None, frame: PreparedFrame, column: str, max_rows: int) -> TargetHistory:
    """``old`` extended by ``frame``'s ``column`` (regular frames only), cut to the newest ``max_rows`` values."""
    step = int(frame.cadence.astype("timedelta64[ns]").astype(np.int64))
    stamps = frame.timestamps.astype("datetime64[ns]").view(np.int64)
    new = np.asarray(frame.column(column), dtype=np.float32)
    fresh = TargetHistory(column, int(stamps[-1]), step, new[-max_rows:])
    if old is None or old.column != column or old.step_ns != step or (int(stamps[0]) - old.first_ns) % step:
        return fresh
    if int(stamps[-1]) <= old.last_ns:
        return old  # an object older than what is kept: nothing new
    gap = (int(stamps[0]) - old.last_ns) // step - 1  # rows missing between the two (negative: they overlap)
    if gap > MAX_GAP_ROWS:
        return fresh
    keep = old.values[: max(0, (int(stamps[0]) - old.first_ns) // step)]
    fill = np.linspace(old.values[-1], new[0], gap + 2, dtype=np.float32)[1:-1] if gap > 0 else new[:0]
    return TargetHistory(column, int(stamps[-1]), step, np.concatenate([keep, fill, new])[-max_rows:])


class HistoryChain:
    """A kept series extended by frames in order, each step computed once per target column and length.

    One per identifier and micro-batch: in a burst every claim's forecast needs the series through its
    own frame, and the steps before it are shared (before: each claim decoded the table value and
    re-extended every earlier frame).
    """

    def __init__(self, kept: TargetHistory | None) -> None:
        self.kept = kept
        self._frames: list[PreparedFrame] = []
        self._steps: dict[tuple[str, int], list[TargetHistory | None]] = {}

    def append(self, frame: PreparedFrame) -> int:
        """Add the next frame; returns how many frames the chain holds (the count to ask ``through`` for)."""
        self._frames.append(frame)
        return len(self._frames)

    def through(self, count: int, column: str, max_rows: int) -> TargetHistory | None:
        """The kept series extended by the first ``count`` frames."""
        steps = self._steps.setdefault((column, max_rows), [self.kept])
        while len(steps) <= count:
            steps.append(extend(steps[-1], self._frames[len(steps) - 1], column, max_rows))
        return steps[count]


def encode_history(history: TargetHistory) -> bytes:
    """Table value: a fixed header, the column name, the float32 values."""
    name = history.column.encode()
    header = _HEADER.pack(_MAGIC, history.last_ns, history.step_ns, len(history.values), len(name))
    return header + name + np.ascontiguousarray(history.values, dtype="<f4").tobytes()


def decode_history(payload: bytes) -> TargetHistory:
    """Inverse of encode_history."""
    magic, last_ns, step_ns, count, name_len = _HEADER.unpack_from(payload)
    if magic != _MAGIC or len(payload) != _HEADER.size + name_len + 4 * count:
        raise InvalidInput("not a target_history value")
    start = _HEADER.size + name_len
    column = payload[_HEADER.size : start].decode()
    return TargetHistory(column, last_ns, step_ns, np.frombuffer(payload, dtype="<f4", count=count, offset=start))
