"""Retraining data: the identifier's claim objects found through its prediction logs, joined by timestamp."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from flts_streams.forecasting.demo import demo_frame
from flts_streams.streaming.claim_messages import Coordinates, log_object_key
from flts_streams.streaming.claim_objects import ObjectLimits
from flts_streams.streaming.object_store import LocalStore
from flts_streams.streaming.retraining import InsufficientData, check_enough, claimed_objects, training_table

DAY = 86400.0


def _log(store: LocalStore, identifier: str, key: str, published_at: float, offset: int) -> None:
    line = {"identifier": identifier, "claim": {"bucket": "flts", "object_key": key}, "published_at": published_at}
    where = Coordinates("inference-data", 0, offset)
    store.put("flts", log_object_key("inference-logs", identifier, where, published_at), json.dumps(line).encode())


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def test_the_logs_name_the_identifiers_objects_within_the_look_back(tmp_path):
    store = LocalStore(tmp_path)
    now = 100 * DAY
    _log(store, "A", "old.parquet", now - 20 * DAY, 1)
    _log(store, "A", "d1.parquet", now - 2 * DAY, 2)
    _log(store, "A", "d2.parquet", now - DAY, 3)
    _log(store, "A", "d2.parquet", now - DAY + 60, 4)  # the same object claimed twice
    _log(store, "B", "b.parquet", now - DAY, 5)
    store.put("flts", "inference-logs/A/1970-04-09/00/0-9.jsonl", b"not json\n")  # skipped, not fatal
    assert claimed_objects(store, "flts", "inference-logs", "A", since=now - 14 * DAY) == [
        ("flts", "d1.parquet"),
        ("flts", "d2.parquet"),
    ]
    assert claimed_objects(store, "flts", "inference-logs", "nobody", since=0) == []


def test_objects_join_into_one_row_per_timestamp_and_missing_ones_are_left_out(tmp_path):
    store = LocalStore(tmp_path)
    two_days = demo_frame(days=2, seed=3, gaps=0, blanks=0)
    store.put("flts", "d1.parquet", _parquet(two_days.iloc[:800]))  # overlaps the second by 80 rows
    store.put("flts", "d2.parquet", _parquet(two_days.iloc[720:]))
    objects = [("flts", "d2.parquet"), ("flts", "gone.parquet"), ("flts", "d1.parquet")]
    table = training_table(store, objects, ObjectLimits(50_000, 256), 10_000_000)
    assert len(table) == 1440 and table["time"].is_monotonic_increasing
    check_enough(table, 1440)
    with pytest.raises(InsufficientData, match="1440 distinct rows in the look-back, 1441 needed"):
        check_enough(table, 1441)
    with pytest.raises(InsufficientData):
        training_table(store, [("flts", "gone.parquet")], ObjectLimits(50_000, 256), 10_000_000)
