"""The embedded broker's measured quirks (docs/ARCHITECTURE.md, "Known traps") and our workarounds for them.

Each test pins the broker behaviour *and* the workaround, so an upgrade of Tansu or
aiokafka that changes either is noticed here.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from flts_streams.core.settings import Settings
from flts_streams.kafka.embedded_broker import ensure_topics

pytestmark = pytest.mark.integration


async def _end_offset_after(bootstrap: str, topic: str, n: int, **producer_kw) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_kw)
    await producer.start()
    try:
        futures = [await producer.send(topic, b"x" * 10, partition=0) for _ in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


def test_latest_offset_is_exact_only_with_one_record_per_batch(broker):
    batched, single = f"quirk-{uuid.uuid4().hex[:6]}", f"quirk-{uuid.uuid4().hex[:6]}"
    ensure_topics(broker.bootstrap, [batched, single], 1)
    n = 50
    # Quirk: with normal batching the reported end offset is the last batch's base + 1.
    wrong = asyncio.run(_end_offset_after(broker.bootstrap, batched, n, linger_ms=200))
    assert wrong < n, "Tansu now reports exact end offsets: the 1-byte batch workaround may be dropped"
    # Workaround: the embedded profile's producer_max_batch_size=1 -> one record per batch.
    size = Settings(embedded={"enabled": True}).embedded_faust_overrides()["producer_max_batch_size"]
    assert asyncio.run(_end_offset_after(broker.bootstrap, single, n, max_batch_size=size, linger_ms=0)) == n


async def _join_seconds(bootstrap: str, topic: str, session_ms: int, heartbeat_ms: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=heartbeat_ms,
        rebalance_timeout_ms=session_ms,
    )
    started = time.monotonic()
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        return time.monotonic() - started
    finally:
        await consumer.stop()


def test_join_is_held_for_half_the_session_timeout(broker):
    topic = f"join-{uuid.uuid4().hex[:6]}"
    ensure_topics(broker.bootstrap, [topic], 1)
    emb = Settings(embedded={"enabled": True}).embedded
    short = asyncio.run(
        _join_seconds(broker.bootstrap, topic, int(emb.session_timeout_s * 1000), int(emb.heartbeat_s * 1000))
    )
    long = asyncio.run(_join_seconds(broker.bootstrap, topic, 20_000, 3_000))
    # Quirk: the join takes about half the session timeout (10 s for 20 s) ...
    assert long >= 7.0, f"join with a 20 s session took {long:.1f}s: Tansu no longer holds joins"
    # ... so the embedded profile's short session keeps worker start-up to seconds.
    assert short <= emb.session_timeout_s / 2 + 2.0
