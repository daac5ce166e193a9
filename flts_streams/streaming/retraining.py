"""Retraining data: an identifier's recent claim objects, found through its prediction logs, joined into one table."""

from __future__ import annotations

import json
import logging
import time

import pandas as pd

from flts_streams.core.errors import FltsError, InvalidInput
from flts_streams.forecasting.frame import TIME_COLUMNS
from flts_streams.streaming.claim_messages import safe_identifier
from flts_streams.streaming.claim_objects import ObjectLimits, read_table
from flts_streams.streaming.object_store import ObjectStore

log = logging.getLogger(__name__)


class InsufficientData(InvalidInput):
    """Too little of an identifier's data to retrain on."""


def claimed_objects(
    store: ObjectStore, bucket: str, log_prefix: str, identifier: str, since: float
) -> list[tuple[str, str]]:
    """(bucket, key) of the objects the identifier's claims named since ``since`` (epoch seconds), in log order.

    The prediction logs (``<log_prefix>/<identifier>/<day>/<hour>/...jsonl``, one line per processed claim)
    are the record of which objects carried the identifier's data.
    """
    prefix = f"{log_prefix}/{safe_identifier(identifier)}/"
    first_day = time.strftime("%Y-%m-%d", time.gmtime(since))
    found: dict[tuple[str, str], None] = {}
    for key in store.list(bucket, prefix):
        day = key[len(prefix) :].split("/", 1)[0]
        if day < first_day:
            continue
        for line in store.get(bucket, key).splitlines():
            try:
                record = json.loads(line)
                if record["identifier"] == identifier and record["published_at"] >= since:
                    found[(record["claim"]["bucket"], record["claim"]["object_key"])] = None
            except (ValueError, KeyError, TypeError):
                log.warning("unreadable prediction-log line skipped bucket=%s key=%s", bucket, key)
    return list(found)


def training_table(
    store: ObjectStore, objects: list[tuple[str, str]], limits: ObjectLimits, max_bytes: int
) -> pd.DataFrame:
    """The objects' rows joined: one row per timestamp (the newest object's), oldest first.

    An object gone or unreadable since its claim is left out (logged); the rest still trains.
    """
    parts = []
    for bucket, key in objects:
        try:
            parts.append(read_table(store.get(bucket, key, max_bytes), key, limits).to_pandas())
        except FltsError as exc:
            log.warning("claim object left out of retraining bucket=%s key=%s error=%s", bucket, key, exc)
    if not parts:
        raise InsufficientData("none of the identifier's claim objects could be read")
    table = pd.concat(parts, ignore_index=True)
    column = next((c for c in TIME_COLUMNS if c in table.columns), None)
    if column is None:
        raise InvalidInput(f"the claim objects have no time column (one of {', '.join(TIME_COLUMNS)})")
    table[column] = pd.to_datetime(table[column])
    return table.drop_duplicates(column, keep="last").sort_values(column).reset_index(drop=True)


def check_enough(table: pd.DataFrame, min_rows: int) -> None:
    """InsufficientData unless the table holds at least ``min_rows`` rows."""
    if len(table) < min_rows:
        raise InsufficientData(f"{len(table)} distinct rows in the look-back, {min_rows} needed to retrain")
