"""Training data from claims: the objects identifiers' claims named, found through the prediction logs, joined by
timestamp (one identifier's for `flts trainer`, every identifier's for `flts train --global --claims`)."""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flts_streams.core.errors import FltsError, InvalidInput
from flts_streams.forecasting.frame import (
    MAX_GAP_ROWS,  # the longest gap training imputes; a longer one splits a series
    TIME_COLUMNS,
    PreparedFrame,
    infer_cadence,
    parse_timestamps,
    prepare_frame,
)
from flts_streams.streaming.claim_messages import safe_identifier
from flts_streams.streaming.claim_objects import ObjectLimits, read_table
from flts_streams.streaming.object_store import ObjectStore

log = logging.getLogger(__name__)


class InsufficientData(InvalidInput):
    """Too little of an identifier's data to retrain on."""


def claimed_objects(
    store: ObjectStore, bucket: str, log_prefix: str, identifier: str, since: float
) -> list[tuple[str, str]]:
    """(bucket, key) of the objects the identifier's claims named since ``since`` (epoch seconds), in log order."""
    return claimed_objects_by_identifier(store, bucket, log_prefix, since, identifier).get(identifier, [])


def claimed_objects_by_identifier(
    store: ObjectStore, bucket: str, log_prefix: str, since: float, identifier: str | None = None
) -> dict[str, list[tuple[str, str]]]:
    """Every identifier's (or only ``identifier``'s) claimed objects since ``since``, each list in log order.

    The prediction logs (``<log_prefix>/<identifier>/<day>/<hour>/...jsonl``, one line per processed claim)
    are the record of which objects carried an identifier's data; a line's ``identifier`` is the truth
    (two identifiers may share a folder name).
    """
    root = f"{log_prefix}/{safe_identifier(identifier)}/" if identifier is not None else f"{log_prefix}/"
    first_day = time.strftime("%Y-%m-%d", time.gmtime(since))
    found: dict[str, dict[tuple[str, str], None]] = {}
    for key in store.list(bucket, root):
        parts = key[len(root) :].split("/")
        day = parts[0] if identifier is not None else parts[1] if len(parts) > 1 else ""
        if day < first_day:
            continue
        for line in store.get(bucket, key).splitlines():
            try:
                record = json.loads(line)
                owner, claim = record["identifier"], record["claim"]
                if (identifier is None or owner == identifier) and record["published_at"] >= since:
                    # A claim without a bucket named the default one: the bucket the logs are in.
                    where = (str(claim.get("bucket") or bucket), str(claim["object_key"]))
                    found.setdefault(str(owner), {})[where] = None
            except (ValueError, KeyError, TypeError, AttributeError):  # not a record the worker writes
                log.warning("unreadable prediction-log line skipped bucket=%s key=%s", bucket, key)
    return {owner: list(objects) for owner, objects in found.items()}


def sampled(objects: dict[str, list[tuple[str, str]]], count: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """``count`` identifiers drawn at random (the same ones for the same seed and identifiers), or all if fewer."""
    if count >= len(objects):
        return objects
    chosen = random.Random(seed).sample(sorted(objects), count)
    return {identifier: objects[identifier] for identifier in sorted(chosen)}


def training_table(
    store: ObjectStore, objects: list[tuple[str, str]], limits: ObjectLimits, max_bytes: int
) -> pd.DataFrame:
    """The objects' rows joined: one row per timestamp (the newest object's), oldest first, the time in ``time``.

    An object gone or unreadable since its claim is left out (logged); the rest still trains.
    """
    parts = []
    for bucket, key in objects:
        try:
            parts.append(_object_rows(store.get(bucket, key, max_bytes), key, limits))
        except FltsError as exc:
            log.warning("claim object left out of training bucket=%s key=%s error=%s", bucket, key, exc)
    if not parts:
        raise InsufficientData("none of the identifier's claim objects could be read")
    table = pd.concat(parts, ignore_index=True)
    return table.drop_duplicates("time", keep="last").sort_values("time").reset_index(drop=True)


def _object_rows(data: bytes, key: str, limits: ObjectLimits) -> pd.DataFrame:
    """An object's rows, its time column parsed as the service parses a claim's (UTC, naive) and named ``time``."""
    frame = read_table(data, key, limits).to_pandas()
    column = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if column is None:
        raise InvalidInput(f"object {key!r} has no time column (one of {', '.join(TIME_COLUMNS)})")
    stamps = parse_timestamps(frame[column].to_numpy())
    return frame.drop(columns=[c for c in TIME_COLUMNS if c in frame.columns]).assign(time=stamps)


def check_enough(table: pd.DataFrame, min_rows: int) -> None:
    """InsufficientData unless the table holds at least ``min_rows`` rows."""
    if len(table) < min_rows:
        raise InsufficientData(f"{len(table)} distinct rows in the look-back, {min_rows} needed to retrain")


def retraining_series(
    table: pd.DataFrame, required: tuple[str, ...], series_min: int, total_min: int
) -> list[PreparedFrame]:
    """An identifier's series to retrain on (its runs of ``series_min`` rows or more); InsufficientData unless
    they hold ``total_min`` rows. A hole in its claims (an outage) leaves the data on each side usable."""
    frames = series(table, required, series_min)
    rows = sum(len(f) for f in frames)
    if rows < total_min:
        raise InsufficientData(
            f"{rows} rows in runs of {series_min} or more without a gap over {MAX_GAP_ROWS} rows, "
            f"{total_min} needed to retrain"
        )
    return frames


def runs(table: pd.DataFrame, max_gap_rows: int = MAX_GAP_ROWS) -> list[pd.DataFrame]:
    """A joined table (training_table's) cut where training could not bridge it: gaps longer than
    ``max_gap_rows`` steps, or rows off the cadence grid (objects sampled at another phase). Claims need not
    cover a cell's every hour."""
    ns = table["time"].to_numpy("datetime64[ns]").view(np.int64)
    if len(ns) < 2:
        return [table]
    steps = ns[1:] - ns[:-1]
    step = int(infer_cadence(ns.view("datetime64[ns]")).astype(np.int64))
    cuts = np.flatnonzero((steps % step != 0) | (steps > (max_gap_rows + 1) * step)) + 1
    bounds = [0, *cuts.tolist(), len(table)]
    return [table.iloc[a:b] for a, b in zip(bounds, bounds[1:])]


def series(table: pd.DataFrame, required: tuple[str, ...], min_rows: int) -> list[PreparedFrame]:
    """The table's runs of ``min_rows`` rows or more, each prepared for training (short gaps imputed)."""
    return [prepare_frame(run, required=required, impute=True) for run in runs(table) if len(run) >= min_rows]


@dataclass
class NetworkData:
    """Series to train a global model on, from every identifier's claims, and what was left out and why."""

    frames: list[PreparedFrame] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # identifier -> rows it contributes
    skipped: dict[str, str] = field(default_factory=dict)  # identifier -> why it contributes nothing


def network_data(
    store: ObjectStore,
    objects: dict[str, list[tuple[str, str]]],
    limits: ObjectLimits,
    max_bytes: int,
    required: tuple[str, ...],
    min_rows: int,
) -> NetworkData:
    """Each identifier's objects joined, cut into runs training can bridge; the runs of ``min_rows`` or more kept."""
    data = NetworkData()
    for identifier, named in objects.items():
        try:
            table = training_table(store, named, limits, max_bytes)
            frames = series(table, required, min_rows)
        except FltsError as exc:  # this identifier's data, not the network's: say why and go on
            data.skipped[identifier] = str(exc)
            continue
        if not frames:
            longest = max(len(run) for run in runs(table))
            data.skipped[identifier] = f"its longest run of rows is {longest}, {min_rows} needed"
            continue
        data.frames += frames
        data.rows[identifier] = sum(len(f) for f in frames)
    return data
