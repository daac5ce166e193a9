"""Frame preparation: every validation error, imputation, cadence inference."""

from __future__ import annotations

import numpy as np
import pytest

from flts_streams.core.errors import BadTimestamps, BadValues, MissingColumns, SchemaError
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


@pytest.mark.parametrize(
    "names,index_col,expected",
    [
        (["time", "down"], None, "time"),
        (["ts", "time"], None, "ts"),
        (["x", "when"], "when", "when"),
        (["timestamp", "date"], None, "timestamp"),
        (["date"], None, "date"),
    ],
)
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
    ts = np.array(
        ["2024-01-01T00:00", "2024-01-01T00:02", "2024-01-01T00:04", "2024-01-01T00:08"], dtype="datetime64[ns]"
    )
    assert infer_cadence(ts) == np.timedelta64(120, "s")
    with pytest.raises(BadTimestamps):
        infer_cadence(ts[:1])


def _hostile_variants(seed: int = 11, count: int = 400):
    """Column data with one or two realistic defects each (or none)."""
    rng = np.random.default_rng(seed)
    defects = [
        lambda d, i: d["down"].__setitem__(i, None),
        lambda d, i: d["down"].__setitem__(i, "1.5"),
        lambda d, i: d["down"].__setitem__(i, "abc"),
        lambda d, i: d["up"].__setitem__(i, True),
        lambda d, i: d["up"].__setitem__(i, float("nan")),
        lambda d, i: d["up"].__setitem__(i, float("-inf")),
        lambda d, i: d["up"].__setitem__(i, 10**400),
        lambda d, i: d["up"].__setitem__(i, 1e308),
        lambda d, i: d["up"].__setitem__(i, [1.0]),
        lambda d, i: d["up"].__setitem__(i, {"a": 1}),
        lambda d, i: d["ts"].__setitem__(i, d["ts"][i - 1]),
        lambda d, i: d["ts"].__setitem__(i, "not a time"),
        lambda d, i: d["ts"].__setitem__(i, None),
        lambda d, i: d["ts"].__setitem__(i, "2024-01-01 00:03:00"),
        lambda d, i: d["ts"].__setitem__(i, 5),
        lambda d, i: d["ts"].__setitem__(i, "2024-01-01T00:00:00+02:00"),
        lambda d, i: d["ts"].reverse(),
        lambda d, i: d["up"].pop(),
        lambda d, i: d.pop("up"),
        lambda d, i: d.__setitem__("up", 3.0),
        lambda d, i: d.__setitem__("ts", d["ts"][:1]),
        lambda d, i: [d[k].__setitem__(slice(None), d[k][:1]) for k in d],
    ]
    for _ in range(count):
        d = _data(n=int(rng.integers(2, 12)))
        for _ in range(int(rng.integers(0, 3))):
            try:
                defects[int(rng.integers(len(defects)))](
                    d, int(rng.integers(1, len(d["ts"])) if len(d["ts"]) > 1 else 0)
                )
            except (IndexError, KeyError, TypeError, AttributeError):
                pass  # a defect that does not apply to this variant
        yield d


def _outcome(fn):
    try:
        f = fn()
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return type(exc), str(exc)
    return f.timestamps.tolist(), f.columns, f.values.tolist(), f.cadence


def test_fast_path_agrees_with_the_full_checks_on_hostile_inputs():
    from flts_streams.forecasting.frame import _prepare_checked, _regular_clean

    took_fast = 0
    for d in _hostile_variants():
        fast = _outcome(lambda: prepare_frame(d, required=("down", "up")))
        full = _outcome(lambda: _prepare_checked(dict(d), "ts", ["down", "up"], False, 30, None))
        assert repr(fast) == repr(full), d  # repr: NaN compares unequal to itself
        took_fast += _regular_clean(d, "ts", ["down", "up"]) is not None
    assert 50 < took_fast < 350, f"the variants must exercise both paths; {took_fast} of 400 took the fast one"


def test_integers_beyond_float_range_are_bad_values_not_crashes():
    d = _data()
    d["up"][2] = 10**400  # valid JSON; Python's json module parses it
    with pytest.raises(BadValues, match="'up'.*rows 2"):
        prepare_frame(d, required=("down", "up"))


@pytest.mark.parametrize("rows", [30, 30_000])  # both sides of the fast path's struct/fromiter switch
def test_fast_path_result_equals_the_full_checks(rows):
    from flts_streams.forecasting.frame import _PACK_MAX, _prepare_checked, _regular_clean

    d = _data(n=rows)
    fast = _regular_clean(d, "ts", ["down", "up"])
    assert fast is not None and (rows * 2 > _PACK_MAX) == (rows == 30_000)
    assert repr(_outcome(lambda: fast)) == repr(
        _outcome(lambda: _prepare_checked(d, "ts", ["down", "up"], False, 30, None))
    )


def test_only_iso_8601_timestamps_are_accepted():
    """pandas' format="mixed" read free-form cells ("Feb 05 2018 11:40PM") at 0.82 s of loop CPU per 20,000 rows."""
    from flts_streams.forecasting.frame import parse_timestamps

    with pytest.raises(BadTimestamps, match="rows 0, 1, 2, 3, 4 and 19995 more; use ISO-8601"):
        parse_timestamps(["Feb 05 2018 11:40PM"] * 20_000)
    zoned = parse_timestamps(["2018-02-05T23:40:00+01:00", "2018-02-05T22:42:00Z"])  # offsets: to UTC
    assert zoned.tolist() == [
        np.datetime64("2018-02-05T22:40:00", "ns").astype(int),
        np.datetime64("2018-02-05T22:42:00", "ns").astype(int),
    ]
