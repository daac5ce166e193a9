"""Scoring issued forecasts against later actuals: each step once, persistence alongside, rolling windows."""

from __future__ import annotations

import numpy as np
import pytest

from flts_streams.core.errors import InvalidInput
from flts_streams.streaming.live_accuracy import (
    BIN_NS,
    WINDOW_BINS,
    HeldForecasts,
    IssuedForecast,
    LiveAccuracy,
    decode_accuracy,
    encode_accuracy,
    horizon_bucket,
    issued_from_frame,
    overview,
    report,
    skill,
)

STEP = 120 * 1_000_000_000  # 2 minutes
ORIGIN = 1_000 * BIN_NS  # on a bin boundary, so a step's bin is easy to tell


def _forecast(values, last=10.0, interval=None, run_id="run-a", origin=ORIGIN) -> IssuedForecast:
    values = np.asarray(values, dtype=np.float32).reshape(-1, 1)
    band = None if interval is None else np.asarray(interval, dtype=np.float32)
    return IssuedForecast(run_id, origin, STEP, values, np.array([last], dtype=np.float32), band)


def _actuals(first_step: int, values) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps of forecast steps first_step.. (1-based) from ORIGIN and their actual values."""
    stamps = ORIGIN + (np.arange(len(values), dtype=np.int64) + first_step) * STEP
    return stamps, np.asarray(values, dtype=np.float32).reshape(-1, 1)


def test_horizon_buckets():
    assert [horizon_bucket(s) for s in (1, 10, 11, 20, 21, 30, 31, 60)] == [
        "1-10", "1-10", "11-20", "11-20", "21-30", "21-30", "31+", "31+",
    ]  # fmt: skip


def test_each_covered_step_is_scored_once_with_persistence_and_the_interval():
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast([11, 12, 13], last=10, interval=[[10, 10, 10], [12, 12, 12]]), keep=8)
    scored = acc.score(*_actuals(1, [12, 12]))  # steps 1 and 2 have arrived
    (total,) = scored
    assert (total.bucket, total.steps, total.abs_error, total.persistence_abs_error) == ("1-10", 2, 1.0, 4.0)
    assert (total.with_interval, total.inside) == (2, 2)
    assert acc.score(*_actuals(1, [12, 12])) == []  # the same claim again: nothing scored twice
    (again,) = acc.score(*_actuals(2, [12, 15]))  # overlaps step 2, brings step 3
    assert (again.steps, again.abs_error, again.inside) == (1, 2.0, 0)
    (row,) = acc.summary(hours=24)
    assert row["steps"] == 3 and row["mae"] == {"down": 1.0} and row["persistence_mae"] == {"down": 3.0}
    assert row["skill"] == pytest.approx(1 - 1 / 3) and row["coverage"] == pytest.approx(2 / 3)


def test_steps_a_frame_skips_are_passed_not_scored_later():
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast([1, 2, 3, 4]), keep=8)
    stamps, values = _actuals(3, [3, 4])  # steps 1 and 2 are missing from the data
    (total,) = acc.score(stamps, values)
    assert total.steps == 2
    assert acc.forecasts[0].scored == 4
    assert acc.score(*_actuals(1, [1, 2])) == []  # an older object later: those steps are gone


def test_a_blank_actual_scores_nothing():
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast([1, 2]), keep=8)
    (total,) = acc.score(*_actuals(1, [np.nan, 2]))
    assert total.steps == 1 and total.abs_error == 0.0


def test_horizon_buckets_and_runs_are_kept_apart():
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast(np.zeros(25), run_id="old"), keep=8)
    acc.issue(_forecast(np.ones(25), run_id="new", origin=ORIGIN + STEP), keep=8)
    acc.score(*_actuals(1, np.ones(30)))
    keys = sorted(acc.window(24))
    assert keys == [(r, b) for r in ("new", "old") for b in ("1-10", "11-20", "21-30")]


def test_windows_roll_with_the_actuals_time():
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast([5.0]), keep=8)
    acc.score(*_actuals(1, [6.0]))
    later = ORIGIN + 2 * 3_600_000_000_000  # two hours on
    acc.issue(_forecast([5.0], origin=later), keep=8)
    acc.score(np.array([later + STEP]), np.array([[9.0]], dtype=np.float32))
    assert acc.summary(hours=1)[0]["steps"] == 1 and acc.summary(hours=24)[0]["steps"] == 2
    acc.issue(_forecast([5.0], origin=ORIGIN + (WINDOW_BINS + 5) * BIN_NS), keep=8)
    acc.score(np.array([ORIGIN + (WINDOW_BINS + 5) * BIN_NS + STEP]), np.array([[5.0]], dtype=np.float32))
    # 25 h after the first actual: its bin is forgotten, the one two hours later is kept
    assert acc.summary(hours=24)[0]["steps"] == 2 and acc.summary(hours=1)[0]["steps"] == 1
    assert min(acc.sums[("run-a", "1-10")]) > ORIGIN // BIN_NS


def test_issuing_keeps_the_newest_and_replaces_a_repeat():
    acc = LiveAccuracy(("down",))
    for n in range(5):
        acc.issue(_forecast([n], origin=ORIGIN + n * STEP), keep=3)
    acc.issue(_forecast([99], origin=ORIGIN + 4 * STEP), keep=3)  # the same claim processed again
    assert [f.origin_ns for f in acc.forecasts] == [ORIGIN + n * STEP for n in (2, 3, 4)]
    assert acc.forecasts[-1].values[0, 0] == 99


def test_the_table_value_round_trips():
    acc = LiveAccuracy(("down", "up"))
    f = IssuedForecast(
        "run-a", ORIGIN, STEP, np.arange(6, dtype=np.float32).reshape(3, 2), np.array([1, 2], dtype=np.float32),
        np.zeros((2, 3), dtype=np.float32),
    )  # fmt: skip
    acc.issue(f, keep=4)
    acc.issue(IssuedForecast("run-b", ORIGIN + STEP, STEP, np.ones((3, 2), np.float32), np.ones(2, np.float32)), 4)
    acc.score(ORIGIN + np.arange(1, 3, dtype=np.int64) * STEP, np.ones((2, 2), dtype=np.float32))
    back = decode_accuracy(encode_accuracy(acc))
    assert back.targets == acc.targets and back.newest_bin == acc.newest_bin
    assert [(x.run_id, x.origin_ns, x.scored) for x in back.forecasts] == [
        (x.run_id, x.origin_ns, x.scored) for x in acc.forecasts
    ]
    assert back.forecasts[1].interval is None
    np.testing.assert_array_equal(back.forecasts[0].interval, f.interval)
    assert back.summary(24) == acc.summary(24)
    assert encode_accuracy(back) == encode_accuracy(acc)


@pytest.mark.parametrize("steps", [(30, 30, 30), (30, 12, 45)], ids=["equal-steps", "mixed-steps"])
def test_every_forecast_comes_back_with_its_own_arrays(steps):
    # Decoding cuts the stored arrays per forecast in one reshape when the steps are equal, one by one otherwise.
    rng = np.random.default_rng(len(set(steps)))
    acc = LiveAccuracy(("down", "up"))
    for i, s in enumerate(steps):
        band = rng.random((2, s)).astype(np.float32) if i != 1 else None
        values, last = rng.random((s, 2)).astype(np.float32), rng.random(2).astype(np.float32)
        acc.issue(IssuedForecast(f"run-{i}", ORIGIN + i * STEP, STEP, values, last, band), keep=4)
    acc.score(ORIGIN + np.arange(1, 40, dtype=np.int64) * STEP, rng.random((39, 2)).astype(np.float32))
    back = decode_accuracy(encode_accuracy(acc))
    for mine, theirs in zip(back.forecasts, acc.forecasts, strict=True):
        np.testing.assert_array_equal(mine.values, theirs.values)
        np.testing.assert_array_equal(mine.last, theirs.last)
        np.testing.assert_array_equal(mine.actual, theirs.actual)
        assert (mine.interval is None) == (theirs.interval is None) and mine.scored == theirs.scored
        if mine.interval is not None:
            np.testing.assert_array_equal(mine.interval, theirs.interval)
    back.forecasts[0].actual[0] = -1.0  # each forecast's actuals are its own (written to as steps are scored)
    assert back.forecasts[1].actual[0] != -1.0


@pytest.mark.parametrize("payload", [b"", b"XXXX\x00\x00\x00\x00", b"LA01\x05\x00\x00\x00{bad}"])
def test_an_unreadable_value_is_invalid_input(payload):
    with pytest.raises(InvalidInput):
        decode_accuracy(payload)


def test_skill_is_relative_to_persistence():
    assert skill(1.0, 2.0) == 0.5 and skill(2.0, 1.0) == -1.0 and skill(1.0, 0.0) is None


def _scored_book(values, actual: float, run_id: str = "run-a") -> LiveAccuracy:
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast(values, last=10.0, run_id=run_id), keep=8)
    acc.score(*_actuals(1, [actual] * len(values)))
    return acc


def test_report_shows_both_windows_and_the_forecasts_kept():
    body = report("A", _scored_book([11, 11], actual=12))
    assert body["identifier"] == "A" and body["scored_through"] == str(
        np.datetime64(ORIGIN + 2 * STEP, "ns").astype("datetime64[s]")
    )
    assert body["windows"]["1h"][0]["steps"] == 2 and body["windows"]["24h"][0]["skill"] == 0.5
    assert body["forecasts"] == [
        {"run_id": "run-a", "issued_for": body["forecasts"][0]["issued_for"], "steps": 2, "scored_steps": 2}
    ]


def test_overview_ranks_identifiers_by_skill_and_sums_per_run():
    books = [
        ("good", _scored_book([12, 12], actual=12)),  # perfect: skill 1
        ("bad", _scored_book([16, 16], actual=12)),  # error 4, persistence 2: skill -1
        ("fresh", LiveAccuracy(("down",))),  # nothing scored yet
        ("other", _scored_book([11, 11], actual=12, run_id="run-b")),  # skill 0.5
    ]
    body = overview(books, worst=2)
    assert (body["identifiers"], body["scored_identifiers"]) == (4, 3)
    assert [r["identifier"] for r in body["worst"]] == ["bad", "other"]
    models = {m["run_id"]: m for m in body["models"]}
    assert models["run-a"]["steps"] == 4 and models["run-a"]["mae"] == {"down": 2.0}
    assert models["run-b"]["skill"] == 0.5


def test_detail_shows_each_forecast_against_its_actuals_and_the_error_per_bin():
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast([11, 12, 13], interval=[[10, 10, 10], [14, 14, 14]]), keep=8)
    acc.score(*_actuals(1, [12, 12]))
    body = report("A", decode_accuracy(encode_accuracy(acc)), detail=True)
    (series,) = body["series"]
    assert series["forecast"] == [11, 12, 13] and series["actual"] == [12, 12, None]
    assert series["interval"] == [[10, 10, 10], [14, 14, 14]]
    (binned,) = body["error_over_time"]
    assert (binned["steps"], binned["mae"], binned["persistence_mae"]) == (2, 0.5, 2.0)
    assert "series" not in report("A", acc)


def test_held_forecasts_are_bounded_and_taken_once():
    held = HeldForecasts(per_identifier=2, identifiers=2)
    for n in range(3):
        held.add("A", _forecast([n], origin=ORIGIN + n * STEP))
    held.add("A", _forecast([9], origin=ORIGIN + 2 * STEP))  # the same origin and run: replaced
    held.add("B", _forecast([1]))
    held.add("C", _forecast([1]))  # a third identifier: the least recently asked for (A) goes
    assert held.take("A") == [] and len(held.take("B")) == 1 and held.take("B") == []
    held.add("D", _forecast([1]))
    held.add("D", _forecast([2], origin=ORIGIN + STEP))
    held.add("D", _forecast([3], origin=ORIGIN + 2 * STEP))
    assert [f.values[0, 0] for f in held.take("D")] == [2, 3]


def test_a_held_forecast_never_replaces_the_claims_own():
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast([1, 2, 3]), keep=8)
    acc.issue(_forecast([7]), keep=8, replace=False)  # GET /predict/{id} from the same frame and model
    assert [len(f.values) for f in acc.forecasts] == [3]
    acc.issue(_forecast([7], run_id="run-b"), keep=8, replace=False)  # a newer model: remembered beside it
    assert sorted(f.run_id for f in acc.forecasts) == ["run-a", "run-b"]


def test_issued_from_frame_starts_at_the_frames_last_row():
    from flts_streams.forecasting.forecast import Forecast
    from flts_streams.forecasting.frame import PreparedFrame

    stamps = (ORIGIN + np.arange(-2, 1) * STEP).astype("datetime64[ns]")
    frame = PreparedFrame(stamps, ("down", "up"), np.array([[1, 0], [2, 0], [3, 0]], float), np.timedelta64(STEP, "ns"))
    forecast = Forecast((ORIGIN + np.arange(1, 3) * STEP).astype("datetime64[ns]"), ("down",), np.array([[4.0], [5.0]]))
    issued = issued_from_frame(forecast, "run-a", frame)
    assert (issued.origin_ns, issued.step_ns, issued.last.tolist(), issued.interval) == (ORIGIN, STEP, [3.0], None)
    assert issued_from_frame(Forecast(forecast.timestamps, ("other",), forecast.values), "run-a", frame) is None


def test_each_step_lands_in_its_own_horizon_bucket_and_bin_with_its_errors():
    # 40 steps of 2 minutes span four horizon buckets and six 15-minute bins; the actuals skip step 17 and leave
    # step 23 blank. Rows and totals must equal a plain per-step tally (scoring groups steps per bucket and bin).
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 100, 40)
    low, high = values - rng.uniform(0, 20, 40), values + rng.uniform(0, 20, 40)
    acc = LiveAccuracy(("down",))
    acc.issue(_forecast(values, last=50.0, interval=[low, high]), keep=4)
    stamps, actuals = _actuals(1, rng.uniform(0, 100, 40))
    actuals[22] = np.nan  # step 23
    keep = np.arange(40) != 16  # step 17 never arrives
    scored = acc.score(stamps[keep], actuals[keep])
    expected: dict[tuple[str, int], list[float]] = {}
    for h in range(40):
        actual = float(actuals[h, 0])
        if h == 16 or np.isnan(actual):
            continue
        due = ORIGIN + (h + 1) * STEP
        row = expected.setdefault((horizon_bucket(h + 1), due // BIN_NS), [0, 0, 0, 0.0, 0.0])
        forecast, lo, hi = (float(np.float32(x)) for x in (values[h], low[h], high[h]))
        row[0] += 1
        row[1] += 1
        row[2] += lo <= actual <= hi
        row[3] += abs(actual - forecast)
        row[4] += abs(actual - 50.0)
    got = {(bucket, bin_id): row for (_, bucket), bins in acc.sums.items() for bin_id, row in bins.items()}
    assert got.keys() == expected.keys() and len(got) >= 8
    for key, row in expected.items():
        np.testing.assert_allclose(got[key], row, rtol=1e-12)
    by_bucket = {s.bucket: s for s in scored}
    assert sorted(by_bucket) == ["1-10", "11-20", "21-30", "31+"]
    for bucket, total in by_bucket.items():
        rows = [row for (b, _), row in expected.items() if b == bucket]
        assert (total.steps, total.with_interval, total.inside) == (
            sum(r[0] for r in rows),
            sum(r[1] for r in rows),
            sum(r[2] for r in rows),
        )
        assert total.abs_error == pytest.approx(sum(r[3] for r in rows), rel=1e-12)
        assert total.persistence_abs_error == pytest.approx(sum(r[4] for r in rows), rel=1e-12)
