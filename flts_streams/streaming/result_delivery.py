"""Sending each claim's outcome (result, dead letter, forward); a refused send never costs another claim."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from faust.exceptions import ProducerSendError

from flts_streams.core.backoff import backoff_s
from flts_streams.core.metrics import Metrics
from flts_streams.streaming.claim_messages import ClaimInput, ClaimOutcome
from flts_streams.streaming.dead_letters import dead_letter, dead_letter_key

log = logging.getLogger(__name__)
Send = Callable[..., Awaitable[Any]]  # Faust's topic.send(key=, value=, headers=)


# Errors about the record itself: sending it again cannot succeed. aiokafka's own ``retriable`` flag
# cannot tell these from an outage: KafkaTimeoutError (a broker that cannot be reached) is not
# retriable either (tests/test_flts_streams/test_streaming/test_result_delivery.py pins both).
RECORD_REFUSED = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidMessageError,
)


def record_refused(exc: ProducerSendError) -> bool:
    """Whether the producer refused the record itself (Faust wraps every aiokafka error in ProducerSendError)."""
    return isinstance(exc.__cause__, RECORD_REFUSED)


@dataclass
class Delivery:
    """Sends outcomes in order; a record the producer refuses becomes a small dead letter, anything else is retried."""

    results: Send
    dead_letters: Send
    forward: Send
    metrics: Metrics
    retry_backoff_s: float = 0.2

    async def deliver(self, inp: ClaimInput, outcome: ClaimOutcome) -> None:
        """Send what ``outcome`` says; never raises (an escaped error would lose the whole micro-batch)."""
        try:
            await self._send(inp, outcome)
        except ProducerSendError as exc:
            self.metrics.claims.labels("send_refused").inc()
            log.warning(
                "claim outcome refused by the producer; dead-lettering it small status=%s partition=%s offset=%s "
                "error=%.300r",
                outcome.status,
                inp.where.partition,
                inp.where.offset,
                exc,
            )
            small = dead_letter(inp.value, inp.key, exc, inp.where)
            try:
                await self._retrying(lambda: self.dead_letters(key=dead_letter_key(inp.key), value=small))
            except ProducerSendError:
                log.exception(
                    "dead letter refused too; the claim is counted, not sent partition=%s offset=%s",
                    inp.where.partition,
                    inp.where.offset,
                )

    async def _send(self, inp: ClaimInput, outcome: ClaimOutcome) -> None:
        if outcome.result is not None:
            assert outcome.identifier is not None
            key = outcome.identifier.encode()
            await self._retrying(lambda: self.results(key=key, value=outcome.result))
        elif outcome.dead_letter is not None:
            await self._retrying(lambda: self.dead_letters(key=dead_letter_key(inp.key), value=outcome.dead_letter))
        elif outcome.forward_key is not None:
            await self._retrying(lambda: self.forward(key=outcome.forward_key, value=inp.value, headers=inp.headers))

    async def _retrying(self, send: Callable[[], Awaitable[Any]]) -> None:
        """``send``, again after a capped exponential backoff while its failure is retriable."""
        attempt = 0
        while True:
            try:
                await send()
                return
            except ProducerSendError as exc:
                if record_refused(exc):
                    raise
                attempt += 1
                self.metrics.claims.labels("retried").inc()
                log.warning("send failed, retrying attempt=%d error=%.300r", attempt, exc)
                await asyncio.sleep(backoff_s(self.retry_backoff_s, attempt))
