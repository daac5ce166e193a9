"""Training data from claims: identifiers' claim objects found through the prediction logs, joined by timestamp."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pandas as pd
import pytest

from flts_streams.core.schemas import Claim
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.spec import FEATURES
from flts_streams.streaming.claim_messages import Coordinates, log_object_key, result_record
from flts_streams.streaming.claim_objects import ObjectLimits
from flts_streams.streaming.claim_training_data import (
    InsufficientData,
    check_enough,
    claimed_objects,
    claimed_objects_by_identifier,
    network_data,
    runs,
    sampled,
    training_table,
)
from flts_streams.streaming.object_store import LocalStore, ObjectStore

DAY = 86400.0
LIMITS = ObjectLimits(50_000, 256)


def log_claim(
    store: ObjectStore, identifier: str, key: str, published_at: float, offset: int, bucket: str | None = "flts"
) -> None:
    """A prediction-log object as the worker writes it (the same record and key functions)."""
    claim = Claim(identifier=identifier, bucket=bucket, object_key=key)
    where = Coordinates("inference-data", 0, offset)
    line = orjson.dumps(result_record(claim, where, published_at, {"identifier": identifier}, published_at + 1))
    store.put("flts", log_object_key("inference-logs", identifier, where, published_at), line + b"\n")


def parquet(frame: pd.DataFrame) -> bytes:
    """A claim object's bytes."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def test_the_logs_name_the_identifiers_objects_within_the_look_back(tmp_path):
    store = LocalStore(tmp_path)
    now = 100 * DAY
    log_claim(store, "A", "old.parquet", now - 20 * DAY, 1)
    log_claim(store, "A", "d1.parquet", now - 2 * DAY, 2)
    log_claim(store, "A", "d2.parquet", now - DAY, 3)
    log_claim(store, "A", "d2.parquet", now - DAY + 60, 4)  # the same object claimed twice
    log_claim(store, "B", "b.parquet", now - DAY, 5)
    store.put("flts", "inference-logs/A/1970-04-09/00/0-9.jsonl", b"not json\n")  # skipped, not fatal
    assert claimed_objects(store, "flts", "inference-logs", "A", since=now - 14 * DAY) == [
        ("flts", "d1.parquet"),
        ("flts", "d2.parquet"),
    ]
    assert claimed_objects(store, "flts", "inference-logs", "nobody", since=0) == []


def test_objects_join_into_one_row_per_timestamp_and_missing_ones_are_left_out(tmp_path):
    store = LocalStore(tmp_path)
    two_days = demo_frame(days=2, seed=3, gaps=0, blanks=0)
    store.put("flts", "d1.parquet", parquet(two_days.iloc[:800]))  # overlaps the second by 80 rows
    store.put("flts", "d2.parquet", parquet(two_days.iloc[720:]))
    objects = [("flts", "d2.parquet"), ("flts", "gone.parquet"), ("flts", "d1.parquet")]
    table = training_table(store, objects, LIMITS, 10_000_000)
    assert len(table) == 1440 and table["time"].is_monotonic_increasing
    check_enough(table, 1440)
    with pytest.raises(InsufficientData, match="1440 distinct rows in the look-back, 1441 needed"):
        check_enough(table, 1441)
    with pytest.raises(InsufficientData):
        training_table(store, [("flts", "gone.parquet")], LIMITS, 10_000_000)


def test_the_logs_name_every_identifiers_objects_and_the_line_not_the_folder_says_whose(tmp_path):
    store = LocalStore(tmp_path)
    now = 100 * DAY
    log_claim(store, "A", "a1.parquet", now - 20 * DAY, 1)  # before the look-back
    log_claim(store, "A", "a2.parquet", now - DAY, 2)
    log_claim(store, "cell/7", "s.parquet", now - DAY, 3)  # both in the folder cell_7
    log_claim(store, "cell_7", "u.parquet", now - DAY, 4)
    log_claim(store, "B", "b.parquet", now - DAY, 5, bucket=None)  # no bucket on the claim: the default one
    store.put("flts", "inference-logs/stray.jsonl", b"{}")  # not in an identifier's folder: no day, skipped
    odd = b'[1]\n{"identifier": "A", "claim": [2], "published_at": 8640000}\n{"identifier": "A"}\n'
    store.put("flts", "inference-logs/A/1970-04-10/00/odd.jsonl", odd)  # lines the worker never writes: skipped
    found = claimed_objects_by_identifier(store, "flts", "inference-logs", since=now - 14 * DAY)
    assert found == {
        "A": [("flts", "a2.parquet")],
        "B": [("flts", "b.parquet")],
        "cell/7": [("flts", "s.parquet")],
        "cell_7": [("flts", "u.parquet")],
    }
    assert claimed_objects(store, "flts", "inference-logs", "cell/7", since=0) == [("flts", "s.parquet")]


def test_runs_cut_at_gaps_training_cannot_bridge_and_at_rows_off_the_grid():
    frame = demo_frame(days=1, seed=5, gaps=0, blanks=0)
    shifted = frame.iloc[600:700].copy()
    shifted["time"] = pd.to_datetime(shifted["time"]) + pd.Timedelta(seconds=60)  # another phase of the 2-min grid
    parts = [frame.iloc[0:100], frame.iloc[130:200], frame.iloc[231:400], shifted]  # 30 and 31 rows missing
    table = pd.concat(parts, ignore_index=True)
    table["time"] = pd.to_datetime(table["time"])
    assert [len(r) for r in runs(table)] == [170, 169, 100]  # 30 missing rows are imputed, 31 are not
    assert [len(r) for r in runs(table, max_gap_rows=31)] == [339, 100]
    assert [len(r) for r in runs(table.iloc[:1])] == [1]


def store_network(store: ObjectStore, now: float) -> dict[str, list[tuple[str, str]]]:
    """Three cells of 60-row objects, as a network sends them (each cell at its own level), and one broken cell."""
    frame = demo_frame(days=2, seed=9, gaps=0, blanks=0)
    plan = {
        "long": [(n * 60, n * 60 + 60) for n in range(6)],  # 360 rows in a row
        "split": [(n * 60, n * 60 + 60) for n in (*range(4), *range(8, 13))],  # 240 rows, 3 h missing, 300 rows
        "short": [(0, 60), (60, 120)],
    }
    offset = 0
    for cell, spans in plan.items():
        level = 1 + len(cell)
        for start, stop in spans:
            key = f"{cell}/{start}.parquet"
            part = frame.iloc[start:stop].copy()
            part[["down", "up"]] *= level
            store.put("flts", key, parquet(part))
            offset += 1
            log_claim(store, cell, key, now - DAY + offset, offset)
    store.put("flts", "broken/0.parquet", parquet(frame.iloc[:400].drop(columns=["up"])))
    log_claim(store, "broken", "broken/0.parquet", now - DAY, 99)
    return claimed_objects_by_identifier(store, "flts", "inference-logs", since=now - 14 * DAY)


def test_a_networks_short_objects_join_into_series_and_what_is_left_out_says_why(tmp_path):
    store = LocalStore(tmp_path)
    data = network_data(store, store_network(store, 100 * DAY), LIMITS, 10_000_000, FEATURES, min_rows=296)
    assert data.rows == {"long": 360, "split": 300}
    assert [len(f) for f in data.frames] == [360, 300]  # split's first run is too short; its second is a series
    assert data.skipped["short"] == "its longest run of rows is 120, 296 needed"
    assert "missing required columns ['up']" in data.skipped["broken"]
    long, split = data.frames
    assert np.all(np.diff(long.timestamps) == np.timedelta64(120, "s"))  # one regular series from six objects
    assert split.timestamps[0] - long.timestamps[0] == np.timedelta64(480 * 120, "s")  # from split's 9th object


def test_a_sample_of_identifiers_is_the_same_for_the_same_seed():
    objects = {f"cell-{n}": [("flts", f"{n}.parquet")] for n in range(50)}
    one, again, other = sampled(objects, 5, seed=1), sampled(objects, 5, seed=1), sampled(objects, 5, seed=2)
    assert one == again and len(one) == 5 and one != other
    assert all(objects[i] == keys for i, keys in one.items())
    assert sampled(objects, 80, seed=1) == objects


def test_objects_name_and_write_their_times_their_own_way_and_an_unreadable_one_is_left_out(tmp_path, caplog):
    """As the service reads a claim: any time column of ts/time/timestamp/date, ISO-8601 with or without an offset."""
    store = LocalStore(tmp_path)
    frame = demo_frame(days=1, seed=4, gaps=0, blanks=0)
    frame["time"] = pd.to_datetime(frame["time"])
    first = frame.iloc[:100]
    second = frame.iloc[100:200].rename(columns={"time": "ts"})
    second["ts"] = (second["ts"] + pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%dT%H:%M:%S+01:00")  # same instants
    bad = frame.iloc[200:300].astype({"time": str})
    bad.iloc[5, bad.columns.get_loc("time")] = "not a time"
    for key, part in (("a", first), ("b", second), ("c", bad)):
        store.put("flts", f"{key}.parquet", parquet(part))
    table = training_table(store, [("flts", k) for k in ("a.parquet", "b.parquet", "c.parquet")], LIMITS, 10_000_000)
    assert list(table.columns).count("time") == 1 and "ts" not in table.columns
    assert len(table) == 200 and [len(r) for r in runs(table)] == [200]
    assert table["time"].iloc[100] == frame["time"].iloc[100]
    assert "left out of training" in caplog.text and "c.parquet" in caplog.text and "unparseable" in caplog.text
