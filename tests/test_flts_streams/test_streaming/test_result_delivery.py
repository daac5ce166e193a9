"""Sending claim outcomes: a record the producer refuses becomes a small dead letter; nothing escapes."""

from __future__ import annotations

import json
import time

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from flts_streams.core.metrics import Metrics
from flts_streams.streaming.claim_messages import ClaimInput, ClaimOutcome, Coordinates
from flts_streams.streaming.result_delivery import Delivery, record_refused


def _refusal(cause: Exception) -> ProducerSendError:
    """What Faust's aiokafka producer raises: every KafkaError wrapped in ProducerSendError."""
    try:
        raise ProducerSendError(f"Error while sending: {cause!r}") from cause
    except ProducerSendError as exc:
        return exc


class Topic:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.sent: list[dict] = []
        self.failures = failures or []

    async def send(self, **kw) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(kw)


def test_a_size_refusal_is_permanent_and_a_timeout_is_retried():
    assert record_refused(_refusal(MessageSizeTooLargeError()))
    assert not record_refused(_refusal(KafkaTimeoutError()))
    # Why we keep our own list: aiokafka marks neither as retriable (if it starts to, its flag could do).
    assert MessageSizeTooLargeError.retriable is False and KafkaTimeoutError.retriable is False


async def test_a_refused_result_becomes_a_small_dead_letter_and_a_transient_failure_is_retried():
    results, dead, forward = (
        Topic([_refusal(MessageSizeTooLargeError())]),
        Topic([_refusal(KafkaTimeoutError())]),
        Topic(),
    )
    metrics = Metrics()
    delivery = Delivery(results.send, dead.send, forward.send, metrics, retry_backoff_s=0.001)
    inp = ClaimInput(b'{"identifier": "A"}', b"A", [], Coordinates("inference-data", 0, 5), time.time())
    await delivery.deliver(inp, ClaimOutcome("processed", "A", result=b"x" * 10))
    assert results.sent == [] and len(dead.sent) == 1  # the first dead-letter send timed out and was retried
    letter = json.loads(dead.sent[0]["value"])
    assert letter["error_type"] == "ProducerSendError" and "MessageSizeTooLarge" in letter["error"]
    assert letter["source"]["offset"] == 5
    assert (
        metrics.claims.labels("send_refused")._value.get() == 1 and metrics.claims.labels("retried")._value.get() == 1
    )


async def test_a_dead_letter_refused_too_is_counted_and_nothing_escapes():
    dead = Topic([_refusal(MessageSizeTooLargeError()), _refusal(MessageSizeTooLargeError())])
    delivery = Delivery(Topic().send, dead.send, Topic().send, Metrics())
    inp = ClaimInput(b"x", b"k" * 5000, [], Coordinates("inference-data", 0, 1), time.time())
    await delivery.deliver(inp, ClaimOutcome("dead_lettered", dead_letter=b"{}"))  # does not raise
    assert dead.sent == []
