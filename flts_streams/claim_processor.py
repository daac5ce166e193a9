"""Per-claim processing for agents/claims; never raises, so no event is lost by Faust."""
from __future__ import annotations

import asyncio
import logging

from flts_streams.claims import ClaimOutcome, Coordinates, dead_letter, decode_claim, deadline_of, expired, frame_from_object
from flts_streams.codec import encode_frame
from flts_streams.errors import FltsError, TransientError
from flts_streams.metrics import Metrics
from flts_streams.settings import Settings
from flts_streams.storage import ObjectStore, allowed_bucket

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


class ClaimProcessor:
    """Decode -> deadline -> fetch (with retries) -> prepare -> encoded frame tail."""

    def __init__(self, settings: Settings, store: ObjectStore, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics

    async def process(self, value: bytes | None, key: bytes | None, headers: object, where: Coordinates) -> ClaimOutcome:
        """Process one claim; any failure that is not transient becomes a dead letter."""
        try:
            claim = decode_claim(value)
            if expired(deadline_of(headers)):  # type: ignore[arg-type]
                self.metrics.claims.labels("expired").inc()
                log.info("claim expired identifier=%s offset=%s", claim.identifier, where.offset)
                return ClaimOutcome("expired", claim.identifier)
            bucket = allowed_bucket(self.settings, claim.bucket)
            data = await self._fetch(bucket, claim.object_key)
            frame = await asyncio.to_thread(frame_from_object, data, claim.object_key)
            encoded = encode_frame(frame.tail(self.settings.streaming.frame_max_rows))
        except Exception as exc:  # noqa: BLE001 - the agent boundary: an escaped error would lose the event
            self.metrics.claims.labels("dead_lettered").inc()
            level = logging.WARNING if isinstance(exc, FltsError) else logging.ERROR
            log.log(level, "claim dead-lettered topic=%s partition=%s offset=%s error=%r", where.topic, where.partition, where.offset, exc)
            return ClaimOutcome("dead_lettered", dead_letter=dead_letter(value, key, exc, where))
        self.metrics.claims.labels("processed").inc()
        return ClaimOutcome("processed", claim.identifier, encoded)

    async def _fetch(self, bucket: str, key: str) -> bytes:
        """Read an object, retrying transient failures with capped exponential backoff."""
        delay = self.settings.streaming.retry_backoff_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return await asyncio.to_thread(self.store.get, bucket, key)
            except TransientError as exc:
                self.metrics.claims.labels("retried").inc()
                log.warning("object store retry attempt=%d bucket=%s key=%s error=%s", attempt, bucket, key, exc)
                await asyncio.sleep(min(delay * 2 ** (attempt - 1), MAX_BACKOFF_S))

