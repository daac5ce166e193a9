"""Publish JSON events to Kafka from command-line tools (aiokafka, one short-lived producer)."""
from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from flts_streams.errors import BrokerError
from flts_streams.records import TrainingEvent


async def _send(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    # One record per batch keeps Tansu's end offsets exact; harmless on Apache Kafka.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0, request_timeout_ms=15000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def publish_training_event(bootstrap: str, topic: str, event: TrainingEvent) -> None:
    """Send a model-training event keyed by identifier."""
    key = event.identifier.encode() if event.identifier else None
    try:
        asyncio.run(_send(bootstrap, topic, key, event.model_dump_json(exclude_none=True).encode()))
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"could not publish to {topic} at {bootstrap}: {exc!r}") from exc
