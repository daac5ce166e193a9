"""aiokafka/Faust consumer behaviour flts_streams/kafka/seek_safe_consumer.py works around, pinned on a real broker.

If an aiokafka upgrade makes ``seek_to_committed`` rewind partitions without a committed offset,
the first test fails and the workaround can be reconsidered; likewise, if its consumer stops cleanly
during an outage, the stop test fails and flts_streams/kafka/consumer_stop.py can go.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from flts_streams.kafka.consumer_stop import stop_consumer
from flts_streams.kafka.embedded_broker import ensure_topics
from flts_streams.kafka.seek_safe_consumer import never_committed
from tests.integration.harness import broker_behind_proxy
from tests.integration.proxy import TcpProxy

pytestmark = pytest.mark.integration
RECORDS = 5


async def _positions_after_seek(bootstrap: str, topic: str, rewind: bool) -> tuple[int, int]:
    """Read every record without committing, seek back to committed; returns (position before, after)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, b"claim", partition=0) for _ in range(RECORDS)])
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        seen = 0
        while seen < RECORDS:
            seen += sum(len(v) for v in (await consumer.getmany(timeout_ms=1000)).values())
        before = await consumer.position(tp)
        committed = await consumer.seek_to_committed()
        if rewind:  # as SeekSafeConsumer.seek_to_committed does it
            starts = await consumer.beginning_offsets(never_committed(committed, skip_topics=()))
            for tp_, offset in starts.items():
                consumer.seek(tp_, offset)
        return before, await consumer.position(tp)
    finally:
        await consumer.stop()


def test_seek_to_committed_leaves_never_committed_partitions_where_they_are(broker):
    topic = f"seek-{uuid.uuid4().hex[:6]}"
    ensure_topics(broker.bootstrap, [topic], 1)
    before, after = asyncio.run(_positions_after_seek(broker.bootstrap, topic, rewind=False))
    # The trap: records read (and, in Faust, dropped during a rebalance) are never read again.
    assert before == after == RECORDS, (
        "aiokafka now rewinds uncommitted partitions; consumer.py's rewind may be redundant"
    )


def test_rewinding_never_committed_partitions_reads_them_again(broker):
    topic = f"seek-{uuid.uuid4().hex[:6]}"
    ensure_topics(broker.bootstrap, [topic], 1)
    assert asyncio.run(_positions_after_seek(broker.bootstrap, topic, rewind=True)) == (RECORDS, 0)


BACKOFF_MS = 5_000  # long enough that the stop below lands in a failed fetch's back-off, never in its request


async def _stop_during_an_outage(bootstrap: str, proxy: TcpProxy, topic: str, ours: bool) -> str:
    """Consume ``topic`` through ``proxy``, cut it, and stop the consumer while its fetch sleeps in back-off.

    Returns how the stop went.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, retry_backoff_ms=BACKOFF_MS, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.getmany(timeout_ms=500)  # fetching
        proxy.cut()
        fetcher = consumer._fetcher
        give_up = asyncio.get_running_loop().time() + 10
        while not fetcher._pending_tasks and asyncio.get_running_loop().time() < give_up:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the failed fetch is now in its back-off sleep
        assert fetcher._pending_tasks, "no fetch under way when the broker went away: the test proves nothing"
    except BaseException:
        await consumer.stop()
        raise
    try:
        await (stop_consumer(consumer) if ours else consumer.stop())
    except asyncio.CancelledError:  # nothing cancelled this task: the error comes from inside stop()
        return "stop() raised CancelledError"
    return "stopped"


@pytest.mark.parametrize("ours", [False, True], ids=["consumer.stop", "stop_consumer"])
def test_a_consumer_stopped_during_an_outage_stops_only_through_stop_consumer(tmp_path, ours):
    topic = f"stop-{uuid.uuid4().hex[:6]}"
    proxy, broker, bootstrap = broker_behind_proxy(tmp_path, (topic,))
    try:
        outcome = asyncio.run(_stop_during_an_outage(bootstrap, proxy, topic, ours=ours))
    finally:
        proxy.stop()
        broker.stop()
    # The trap (aiokafka): Fetcher.close awaits the cancelled back-off sleep without catching its CancelledError.
    assert outcome == ("stopped" if ours else "stop() raised CancelledError")
