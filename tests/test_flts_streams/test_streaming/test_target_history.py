"""The kept series of an identifier's target: extended by each claim's frame, bounded, compact."""

from __future__ import annotations

import numpy as np
import pytest

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.streaming.target_history import (
    MAX_GAP_ROWS,
    HistoryChain,
    TargetHistory,
    decode_history,
    encode_history,
    extend,
)

STEP = np.timedelta64(120, "s")
T0 = np.datetime64("2024-01-01T00:00:00", "ns")


def _frame(start_row: int, rows: int) -> PreparedFrame:
    ts = T0 + (np.arange(start_row, start_row + rows) * STEP).astype("timedelta64[ns]")
    values = np.arange(start_row, start_row + rows, dtype=np.float64)[:, None]  # value = row number
    return PreparedFrame(ts, ("down",), values, STEP.astype("timedelta64[ns]"))


def _rows(h: TargetHistory) -> np.ndarray:
    return h.values.astype(np.int64)


def test_an_overlapping_frame_continues_the_series_and_it_stays_bounded():
    h = extend(None, _frame(0, 50), "down", max_rows=80)
    h = extend(h, _frame(40, 50), "down", max_rows=80)  # rows 40-49 repeated
    np.testing.assert_array_equal(_rows(h), np.arange(10, 90))  # 0-89, the newest 80
    assert h.last_ns == int((T0 + 89 * STEP).astype("datetime64[ns]").astype(np.int64))


def test_a_short_gap_is_filled_linearly_and_a_long_one_starts_again():
    h = extend(extend(None, _frame(0, 10), "down", 100), _frame(15, 5), "down", 100)
    np.testing.assert_array_equal(_rows(h), np.arange(0, 20))  # rows 10-14 interpolated: 10..14
    far = extend(h, _frame(20 + MAX_GAP_ROWS + 1, 5), "down", 100)
    np.testing.assert_array_equal(_rows(far), np.arange(51, 56))


def test_an_older_frame_changes_nothing_and_another_target_starts_again():
    h = extend(None, _frame(100, 10), "down", 100)
    assert extend(h, _frame(50, 10), "down", 100) is h  # late: nothing new
    other = TargetHistory("up", h.last_ns, h.step_ns, h.values)
    np.testing.assert_array_equal(_rows(extend(other, _frame(110, 5), "down", 100)), np.arange(110, 115))


def test_the_value_is_small_and_round_trips():
    h = extend(None, _frame(0, 5_040), "down", 5_040)
    payload = encode_history(h)
    assert len(payload) < 21_000  # 7 days at 2 minutes: ~20 KB per identifier
    back = decode_history(payload)
    assert back.column == "down" and back.last_ns == h.last_ns and back.step_ns == h.step_ns
    np.testing.assert_array_equal(back.values, h.values)
    with pytest.raises(InvalidInput):
        decode_history(payload[:-4])


def test_a_chain_extends_in_order_and_computes_each_step_once(monkeypatch):
    from flts_streams.streaming import target_history

    calls = []
    real = target_history.extend
    monkeypatch.setattr(target_history, "extend", lambda *a: calls.append(a[1]) or real(*a))
    chain = HistoryChain(extend(None, _frame(0, 10), "down", 100))
    assert chain.append(_frame(10, 10)) == 1 and chain.append(_frame(20, 10)) == 2
    np.testing.assert_array_equal(_rows(chain.through(2, "down", 100)), np.arange(0, 30))
    np.testing.assert_array_equal(_rows(chain.through(1, "down", 100)), np.arange(0, 20))
    chain.through(2, "down", 100)
    assert len(calls) == 2  # one extension per frame, whatever was asked for since
    assert chain.through(0, "down", 100) is chain.kept
