"""Dead letters: bounded records naming the error and source; a large original is spilled to the object store."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from typing import Any

from flts_streams.streaming.claim_messages import Coordinates

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


def dead_letter(
    value: bytes | None,
    key: bytes | None,
    error: BaseException,
    where: Coordinates,
    spilled_to: dict[str, str | None] | None = None,
) -> bytes:
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
        record.update(
            {
                "truncated": True,
                "value_size": len(value),
                "key_size": len(key),
                "value_sha256": hashlib.sha256(value).hexdigest(),
                "original": spilled_to,
            }
        )
    return json.dumps(record).encode()


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The dead letter's message key: the original, or its SHA-256 when too long to send."""
    if key is not None and len(key) > DEAD_LETTER_KEY_INLINE:
        return b"sha256:" + hashlib.sha256(key).hexdigest().encode()
    return key
