"""Frame preparation: every validation error, imputation, cadence inference."""
from __future__ import annotations

import numpy as np
import pytest

from flts_streams.errors import BadTimestamps, BadValues, MissingColumns, SchemaError
from flts_streams.forecasting.frame import find_time_column, infer_cadence, prepare_frame


def _data(n=6, step_min=2, **extra):
    start = np.datetime64("2024-01-01T00:00:00")
    ts = [str(start + np.timedelta64(i * step_min, "m")).replace("T", " ") for i in range(n)]
    return {"ts": ts, "down": [float(i) for i in range(n)], "up": [1.0] * n, **extra}


def test_happy_path_sorts_and_infers_cadence():
    d = _data()
    d = {k: list(reversed(v)) for k, v in d.items()}
    f = prepare_frame(d, required=("down", "up"))
    assert f.columns == ("down", "up")
    assert np.all(np.diff(f.timestamps) == np.timedelta64(120, "s"))
    assert f.column("down").tolist() == [0, 1, 2, 3, 4, 5]
    assert f.cadence == np.timedelta64(120, "s")


@pytest.mark.parametrize("names,index_col,expected", [
    (["time", "down"], None, "time"), (["ts", "time"], None, "ts"), (["x", "when"], "when", "when"),
    (["timestamp", "date"], None, "timestamp"), (["date"], None, "date"),
])
def test_time_column_choice(names, index_col, expected):
    assert find_time_column(names, index_col) == expected


def test_missing_time_column_and_index_col():
    with pytest.raises(MissingColumns, match="no timestamp column"):
        prepare_frame({"down": [1.0, 2.0]})
    with pytest.raises(MissingColumns, match="index_col 'when'"):
        prepare_frame(_data(), index_col="when")


def test_missing_columns_are_named():
    with pytest.raises(MissingColumns, match=r"\['rnti_count', 'mcs_up'\]"):
        prepare_frame(_data(), required=("down", "rnti_count", "mcs_up"))


def test_unparseable_timestamps_name_rows():
    d = _data()
    d["ts"][3] = "not a time"
    with pytest.raises(BadTimestamps, match="rows 3"):
        prepare_frame(d)


def test_duplicate_timestamps():
    d = _data()
    d["ts"][4] = d["ts"][3]
    with pytest.raises(BadTimestamps, match="duplicate"):
        prepare_frame(d)


def test_irregular_cadence_names_rows_in_strict_mode():
    d = _data(n=8)
    d["ts"][5] = "2024-01-01 00:11:00"
    with pytest.raises(BadTimestamps, match="irregular cadence.*120s"):
        prepare_frame(d)


def test_non_numeric_values_named():
    d = _data()
    d["down"][2] = "abc"
    with pytest.raises(BadValues, match="'down'.*rows 2"):
        prepare_frame(d, required=("down",))


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf")])
def test_blank_and_non_finite_rejected_in_strict_mode(bad):
    d = _data()
    d["up"][1] = bad
    with pytest.raises(BadValues, match=r"\['up'\]"):
        prepare_frame(d, required=("down", "up"))


def test_ragged_columns():
    d = _data()
    d["up"] = d["up"][:-1]
    with pytest.raises(SchemaError, match="'up' has 5 values"):
        prepare_frame(d)


def test_impute_interpolates_blank_cells_and_short_gaps():
    d = _data(n=10)
    d["down"][4] = None
    del d["ts"][6], d["down"][6], d["up"][6]  # one missing row
    f = prepare_frame(d, required=("down", "up"), impute=True)
    assert len(f) == 10
    assert f.column("down")[4] == pytest.approx(4.0)
    assert f.column("down")[6] == pytest.approx(6.0)
    assert np.isfinite(f.values).all()


def test_impute_rejects_long_gaps_and_all_blank_columns():
    d = _data(n=50)
    cut = {k: v[:5] + v[45:] for k, v in d.items()}
    with pytest.raises(BadTimestamps, match="exceeds the 30-row limit"):
        prepare_frame(cut, impute=True)
    d = _data()
    d["up"] = [None] * 6
    with pytest.raises(BadValues, match="no valid values"):
        prepare_frame(d, impute=True)


def test_cadence_inference_uses_most_common_step():
    ts = np.array(["2024-01-01T00:00", "2024-01-01T00:02", "2024-01-01T00:04", "2024-01-01T00:08"], dtype="datetime64[ns]")
    assert infer_cadence(ts) == np.timedelta64(120, "s")
    with pytest.raises(BadTimestamps):
        infer_cadence(ts[:1])
