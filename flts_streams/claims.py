"""Plain claim-check logic used by agents/claims: decode, deadline, fetch, prepare, dead-letter."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from flts_streams.errors import InvalidInput, ObjectTooLarge
from flts_streams.forecasting.frame import PreparedFrame, prepare_frame
from flts_streams.records import Claim, parse_message

DEADLINE_HEADER = "deadline_ms"


@dataclass(frozen=True)
class Coordinates:
    """Where a message came from (for results, dead letters and de-duplication)."""

    topic: str
    partition: int
    offset: int


def decode_claim(raw: bytes | None) -> Claim:
    """Parse a claim's JSON value; errors name what is wrong."""
    return parse_message(Claim, raw, "claim")


def deadline_of(headers: Iterable[tuple[str, bytes]] | dict[str, bytes] | None) -> int | None:
    """The ``deadline_ms`` header (epoch ms, ASCII), or None when absent or unreadable."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for key, value in items:
        if key == DEADLINE_HEADER and value is not None:
            try:
                return int(value.decode("ascii") if isinstance(value, bytes) else value)
            except (ValueError, UnicodeDecodeError):
                return None
    return None


def expired(deadline_ms: int | None, now_ms: float | None = None) -> bool:
    """True when a deadline exists and has passed."""
    if deadline_ms is None:
        return False
    return (now_ms if now_ms is not None else time.time() * 1000) > deadline_ms


@dataclass(frozen=True)
class ObjectLimits:
    """What a claim's object may hold once decoded (the bytes are bounded by the store read)."""

    max_rows: int = 50_000  # the defaults of FLTS_STREAMING__OBJECT_MAX_ROWS and _COLUMNS
    max_columns: int = 256


def read_table(data: bytes, key: str, limits: ObjectLimits = ObjectLimits()) -> pa.Table:
    """Parquet or CSV object bytes as an Arrow table (by extension, Parquet by magic), within ``limits``.

    Limits are checked before decoding (Parquet: its footer) or while decoding (CSV: block by block):
    a 562 KB Parquet of 10^7 rows grew a worker from 1 GB to 4.6 GB when decoded whole.
    """
    try:
        if key.endswith(".csv") or not data.startswith(b"PAR1"):
            return _read_csv(data, key, limits)
        parquet = pq.ParquetFile(io.BytesIO(data))
        _check_shape(key, parquet.metadata.num_rows, len(parquet.schema_arrow.names), limits)
        return parquet.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"object {key!r} is neither valid Parquet nor CSV: {exc}") from exc


def _read_csv(data: bytes, key: str, limits: ObjectLimits) -> pa.Table:
    reader = pacsv.open_csv(io.BytesIO(data))
    _check_shape(key, 0, len(reader.schema.names), limits)
    batches, rows = [], 0
    for batch in reader:
        rows += batch.num_rows
        _check_shape(key, rows, batch.num_columns, limits, counted_so_far=True)
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def _check_shape(key: str, rows: int, columns: int, limits: ObjectLimits, counted_so_far: bool = False) -> None:
    if columns > limits.max_columns:
        raise ObjectTooLarge(f"object {key!r} has {columns} columns, above the limit of {limits.max_columns} "
                             "(FLTS_STREAMING__OBJECT_MAX_COLUMNS)")
    if rows > limits.max_rows:
        raise ObjectTooLarge(f"object {key!r} has {'at least ' if counted_so_far else ''}{rows} rows, above the limit of "
                             f"{limits.max_rows} (FLTS_STREAMING__OBJECT_MAX_ROWS); send only the recent rows")


def frame_from_object(data: bytes, key: str, required: tuple[str, ...] = (), limits: ObjectLimits = ObjectLimits()) -> PreparedFrame:
    """Decode an object into a prepared frame (blank cells imputed, gaps filled)."""
    table = read_table(data, key, limits)
    columns: dict[str, Any] = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    return prepare_frame(columns, required=required, impute=True)


# A dead letter carries at most this much of the original value and key inline; the whole original
# goes to the object store (spill_key) first. A 786 KB value, base64-encoded inline, exceeded the
# producer's 1 MB request limit and crashed the agent, losing its micro-batch.
DEAD_LETTER_VALUE_INLINE = 64 * 1024
DEAD_LETTER_KEY_INLINE = 1024
ERROR_TEXT_MAX = 2000  # characters of the error message kept (some embed the offending input)


def spill_key(prefix: str, where: Coordinates) -> str:
    """Object key of a dead letter's full original value (deterministic: a redelivery rewrites it)."""
    topic = re.sub(r"[^A-Za-z0-9._-]", "_", where.topic)
    return f"{prefix}/{topic}/{where.partition}-{where.offset}.value"


def needs_spill(value: bytes | None, key: bytes | None) -> bool:
    """True when a dead letter cannot carry the original value and key whole."""
    return len(value or b"") > DEAD_LETTER_VALUE_INLINE or len(key or b"") > DEAD_LETTER_KEY_INLINE


def dead_letter(value: bytes | None, key: bytes | None, error: BaseException, where: Coordinates,
                spilled_to: dict[str, str] | None = None) -> bytes:
    """Dead-letter value: the original bytes (base64; truncated beyond DEAD_LETTER_VALUE_INLINE, with
    ``spilled_to`` naming the object holding the whole value and key), the error and the source coordinates.

    Its size is bounded whatever the original's: below 100 KB.
    """
    value, key = value or b"", key or b""
    message = str(error)
    record: dict[str, Any] = {
        "error": f"{type(error).__name__}: {message[:ERROR_TEXT_MAX]}{'...' if len(message) > ERROR_TEXT_MAX else ''}",
        "error_type": type(error).__name__,
        "source": {"topic": where.topic, "partition": where.partition, "offset": where.offset},
        "key": key[:DEAD_LETTER_KEY_INLINE].decode("utf-8", "replace") if key else None,
        "value_b64": base64.b64encode(value[:DEAD_LETTER_VALUE_INLINE]).decode("ascii"),
        "dead_lettered_at": time.time(),
    }
    if needs_spill(value, key):
        record.update({"truncated": True, "value_size": len(value), "key_size": len(key),
                       "value_sha256": hashlib.sha256(value).hexdigest(), "original": spilled_to})
    return json.dumps(record).encode()


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's message key: the original, or its SHA-256 when too long to send."""
    if key is not None and len(key) > DEAD_LETTER_KEY_INLINE:
        return b"sha256:" + hashlib.sha256(key).hexdigest().encode()
    return key


def result_record(claim: Claim, where: Coordinates, published_at: float, body: dict[str, Any], now: float) -> dict[str, Any]:
    """inference-results value (and prediction-log line): forecast plus the claim's coordinates."""
    return {
        **body,
        "claim": {"topic": where.topic, "partition": where.partition, "offset": where.offset,
                  "claim_id": claim.claim_id, "bucket": claim.bucket, "object_key": claim.object_key},
        "published_at": published_at,
        "processed_at": now,
    }


def log_object_key(prefix: str, identifier: str, where: Coordinates, published_at: float) -> str:
    """Partitioned prediction-log key; deterministic, so a re-processed batch rewrites, never appends."""
    stamp = time.gmtime(published_at)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", identifier).strip(".") or "_"
    return f"{prefix}/{safe}/{time.strftime('%Y-%m-%d', stamp)}/{time.strftime('%H', stamp)}/{where.partition}-{where.offset}.jsonl"


@dataclass(frozen=True)
class ClaimInput:
    """One consumed claim message."""

    value: bytes | None
    key: bytes | None
    headers: Any
    where: Coordinates
    published_at: float  # record timestamp, epoch seconds


@dataclass(frozen=True)
class ClaimOutcome:
    """What to do with one claim: publish a result, dead-letter, forward (repartition) or skip."""

    status: str  # processed | expired | dead_lettered | repartitioned
    identifier: str | None = None
    result: bytes | None = None
    dead_letter: bytes | None = None
    forward_key: bytes | None = None
    spill: tuple[str, bytes, bytes] | None = None  # (object key, original value, original key) to store first
