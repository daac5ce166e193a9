"""Kafka transport whose seek-back after a rebalance also covers partitions that have no committed offset."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

log = logging.getLogger(__name__)


def never_committed(committed: Mapping[Any, int | None], skip_topics: Iterable[str]) -> list[Any]:
    """Partitions (outside ``skip_topics``) whose group has no committed offset yet."""
    skip = set(skip_topics)
    return sorted((tp for tp, offset in committed.items() if (offset is None or offset <= 0) and tp.topic not in skip),
                  key=lambda tp: (tp.topic, tp.partition))


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, made safe for stream partitions that were never committed.

    After every (re)assignment Faust "seeks stream partitions to committed offsets" to re-read whatever
    its fetcher buffered and dropped during the rebalance. aiokafka skips that seek when the group has
    no committed offset (``seek_to_committed`` only seeks offsets > 0), so on a fresh group, or after
    a worker died before its first commit, the dropped records were never read again: claims were lost.
    Such partitions are sent back to the start, which is what ``auto_offset_reset=earliest`` promises.
    """

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek to committed offsets; partitions without one go back to the beginning."""
        committed = await super().seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return committed
        consumer = self._thread._ensure_consumer()
        # Faust also seeks back while a rebalance is under way: only partitions still assigned.
        assigned = consumer.assignment()
        rewind = [tp for tp in never_committed(committed, self.app.tables.changelog_topics) if tp in assigned]
        if rewind:
            log.info("rewinding partitions without a committed offset partitions=%s",
                     ",".join(f"{tp.topic}:{tp.partition}" for tp in rewind))
            try:
                await self._thread.call_thread(consumer.seek_to_beginning, *rewind)
            except IllegalStateError:  # revoked meanwhile: the next owner seeks back itself
                log.info("rewind skipped: partitions revoked during the seek")
        return committed


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport with the consumer above."""

    Consumer = Consumer
