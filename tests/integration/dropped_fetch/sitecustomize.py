"""Fault injection for a worker started with this folder on PYTHONPATH: its first fetch of a topic is dropped.

Python imports ``sitecustomize`` at start-up. The first batch of records the consumer thread fetches from
the topic named by DROP_FIRST_FETCH_OF is thrown away after aiokafka moved past it, the way Faust drops
a fetch around a rebalance (flts_streams/kafka/seek_safe_consumer.py, item 4). Nothing later is acked
to reveal the loss when the batch held every record. Used by tests/integration/test_reliability.py.
"""

import logging
import os

from faust.transport.drivers import aiokafka as driver

_fetch_records = driver.AIOKafkaConsumerThread._fetch_records
_dropped: list[dict] = []  # the one batch dropped (this is a test fixture, not the service)


async def _dropping_fetch_records(self, *args, **kwargs):
    records = await _fetch_records(self, *args, **kwargs)
    if not _dropped and any(tp.topic == os.environ["DROP_FIRST_FETCH_OF"] for tp in records):
        _dropped.append({f"{tp.topic}:{tp.partition}": len(batch) for tp, batch in records.items()})
        logging.getLogger(__name__).warning("fault injected: fetch dropped records=%s", _dropped[0])
        return {}
    return records


driver.AIOKafkaConsumerThread._fetch_records = _dropping_fetch_records
