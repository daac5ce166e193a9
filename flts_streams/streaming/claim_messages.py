"""Claim messages: decode, deadline header, result record, prediction-log key, the consumed and decided forms."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flts_streams.core.schemas import Claim, parse_message

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


def result_record(
    claim: Claim, where: Coordinates, published_at: float, body: dict[str, Any], now: float
) -> dict[str, Any]:
    """inference-results value (and prediction-log line): forecast plus the claim's coordinates."""
    return {
        **body,
        "claim": {
            "topic": where.topic,
            "partition": where.partition,
            "offset": where.offset,
            "claim_id": claim.claim_id,
            "bucket": claim.bucket,
            "object_key": claim.object_key,
        },
        "published_at": published_at,
        "processed_at": now,
    }


def safe_identifier(identifier: str) -> str:
    """The identifier as one path segment of object keys."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", identifier).strip(".") or "_"


def log_object_key(prefix: str, identifier: str, where: Coordinates, published_at: float) -> str:
    """Partitioned prediction-log key; deterministic, so a re-processed batch rewrites, never appends."""
    stamp = time.gmtime(published_at)
    safe = safe_identifier(identifier)
    day, hour = time.strftime("%Y-%m-%d", stamp), time.strftime("%H", stamp)
    return f"{prefix}/{safe}/{day}/{hour}/{where.partition}-{where.offset}.jsonl"


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
