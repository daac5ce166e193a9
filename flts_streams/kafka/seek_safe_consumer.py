"""Faust's aiokafka consumer, made safe for the ways it loses records around rebalances."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol, cast

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service

from flts_streams.core.metrics import Metrics
from flts_streams.kafka.consumer_stop import stop_consumer

log = logging.getLogger(__name__)

# How long the head of a partition may stay un-acked while later offsets are acked before the
# consumer reads it again. Far above a batch's processing time, so only a dropped record trips it.
HEAL_AFTER_S = 10.0
# After reading it again, how long before a still-missing head is taken to hold no record. Generous:
# the re-read record may queue behind a full stream buffer.
GIVE_UP_AFTER_S = 60.0
# How long a partition may idle with records on the broker beyond its commit, none of them in flight
# or acked, before the consumer reads it again from the commit; and how often that is checked.
STALL_AFTER_S = 10.0
STALL_CHECK_S = 2.0
# How long a fetch of the worker's consumer waits on the broker for records (Faust: 1.5 s; see FltsConsumerThread).
FETCH_MAX_WAIT_MS = 500


class _HasMetrics(Protocol):
    metrics: Metrics


def never_committed(committed: Mapping[Any, int | None], skip_topics: Iterable[str]) -> list[Any]:
    """Partitions (outside ``skip_topics``) whose group has no committed offset yet."""
    skip = set(skip_topics)
    return sorted(
        (tp for tp, offset in committed.items() if (offset is None or offset <= 0) and tp.topic not in skip),
        key=lambda tp: (tp.topic, tp.partition),
    )


def idle_with_records(expected: int | None, highwater: int | None, in_flight: bool, acked: bool) -> bool:
    """True when the broker holds records from ``expected`` (the next offset to commit) on and none is in process."""
    return expected is not None and highwater is not None and highwater > expected and not in_flight and not acked


def head_missing(acked: list[int], expected: int | None) -> bool:
    """True when the acked offsets do not continue from ``expected`` (the next offset to commit)."""
    return bool(acked) and expected is not None and min(acked) > expected


class SeekSafeConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer that never commits past a record it did not process.

    1. After every (re)assignment Faust "seeks stream partitions to committed offsets" to re-read what
       its fetcher buffered and dropped during the rebalance. aiokafka skips that seek when the group
       has no committed offset, so on a fresh group (or after a worker died before its first commit)
       the dropped records were never read again. Such partitions go back to the start, as
       ``auto_offset_reset=earliest`` promises.
    2. Faust also drops records without acking them (stale generation, flow stopped, partition not
       yet active) and relies on that seek to read them again, but it commits past them: its
       ``_new_offset`` skips a missing head offset when nothing was committed yet or exactly one is
       missing, and its fetch loop files any jump in offsets as a "gap" the broker left, which the
       next commit steps over (upstream: https://github.com/faust-streaming/faust/issues/606, open).
       Measured: a successor worker skipped 44 claims of one partition.
       Here a commit must continue from the next expected offset without gaps, and a head that
       stays missing while later records are acked is read again (duplicates, never losses). Only
       if it is still missing after that (no record there: transaction markers or compaction, which
       our topics do not use) does the commit step over it.
    3. A seek back re-delivers every record from the head on, including those processed since then
       (acked, not yet committed: a commit cannot pass the head). Those are not handed to the agents
       again, so reading a dropped head again re-processes only the records that were dropped.
    4. When Faust drops a whole fetch (the records right after a takeover), nothing later is acked to
       reveal the missing head: the partition sat idle with 880 claims unread until the test gave up
       after 180 s (CI, tests/integration/test_reliability.py, takeover). A partition that idles with
       records beyond its commit, none in flight and none acked, for STALL_AFTER_S while flow is on, is
       read again from the commit the same way.
    """

    def __post_init__(self) -> None:
        """Add the offsets this consumer expects to commit next (set at every seek-back)."""
        super().__post_init__()
        self._flts_expected: dict[TP, int] = {}
        self._flts_blocked_since: dict[TP, float] = {}
        self._flts_read_again: dict[TP, int] = {}  # offset each partition last sought back to
        self._flts_idle_since: dict[TP, tuple[int, float]] = {}  # (next offset, since when) of idle partitions

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        """The thread that owns the aiokafka consumer: Faust's, with two fixes (FltsConsumerThread)."""
        return FltsConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek to committed offsets; partitions without one go back to the beginning."""
        committed = await super().seek_to_committed()
        self._flts_expected = {tp: offset for tp, offset in committed.items() if offset is not None and offset > 0}
        self._flts_blocked_since.clear()
        self._flts_read_again.clear()
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return committed
        # The aiokafka consumer Faust's consumer thread owns: Faust has no public accessor for it.
        consumer = self._thread._ensure_consumer()  # noqa: SLF001 - pinned by tests/integration/test_consumer_quirks.py
        # Faust also seeks back while a rebalance is under way: only partitions still assigned.
        assigned = consumer.assignment()
        rewind = [tp for tp in never_committed(committed, self.app.tables.changelog_topics) if tp in assigned]
        if rewind:
            log.info(
                "rewinding partitions without a committed offset partitions=%s",
                ",".join(f"{tp.topic}:{tp.partition}" for tp in rewind),
            )
            try:
                # One offset request, then local seeks: seek_to_beginning would ask the broker again.
                starts = await self._thread.call_thread(consumer.beginning_offsets, rewind)
                for tp, offset in starts.items():
                    consumer.seek(tp, offset)
            except IllegalStateError:  # revoked meanwhile: the next owner seeks back itself
                log.info("rewind skipped: partitions revoked during the seek")
            else:
                self._flts_expected.update({TP(tp.topic, tp.partition): offset for tp, offset in starts.items()})
        return committed

    def committed_offsets(self) -> dict[TP, int]:
        """The group's committed offset per partition as this consumer knows it (last commit, else the seek)."""
        known = dict(self._flts_expected)
        known.update({tp: offset for tp, offset in self._committed_offset.items() if offset is not None})
        return known

    def _metrics(self) -> Metrics:
        """The app's metrics (faust types ``self.app`` as AppT; FltsApp lives above this module)."""
        return cast(_HasMetrics, self.app).metrics

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next commit for ``tp``, or None while the record at the head was not acked."""
        committed = self._committed_offset[tp]
        expected = committed if committed is not None else self._flts_expected.get(tp)
        if expected is not None and head_missing(self._acked[tp], expected) and self._waiting_for_head(tp, expected):
            return None
        self._flts_blocked_since.pop(tp, None)
        return super()._new_offset(tp)

    def _waiting_for_head(self, tp: TP, expected: int) -> bool:
        """Whether commits keep waiting for the missing head (read again after HEAL_AFTER_S, given up on later)."""
        now = time.monotonic()
        since = self._flts_blocked_since.setdefault(tp, now)
        read_before = self._flts_read_again.get(tp) == expected
        if now - since < (GIVE_UP_AFTER_S if read_before else HEAL_AFTER_S) or tp not in self.assignment():
            return True
        self._flts_blocked_since[tp] = now
        if read_before:
            # Read again and still not delivered: no record is there (transaction markers, compaction).
            log.warning(
                "no records at these offsets after reading again; committing past them "
                "topic=%s partition=%s offsets=%s-%s",
                tp.topic,
                tp.partition,
                expected,
                min(self._acked[tp]) - 1,
            )
            self._metrics().offset_repairs.labels("no_record").inc()
            self._committed_offset[tp] = min(self._acked[tp])
            return False
        self._flts_read_again[tp] = expected
        self.add_future(self._read_again(tp, expected))
        return True

    async def _read_again(self, tp: TP, expected: int) -> None:
        """Seek back to ``expected`` unless retention already removed it (then commit on from the log start)."""
        consumer = self._thread._ensure_consumer()  # noqa: SLF001 - as in seek_to_committed
        start = (await self._thread.call_thread(consumer.beginning_offsets, [tp]))[tp]
        if start > expected:
            log.warning(
                "records removed by retention before processing topic=%s partition=%s offsets=%s-%s",
                tp.topic,
                tp.partition,
                expected,
                start - 1,
            )
            self._metrics().offset_repairs.labels("retention_removed").inc()
            self._committed_offset[tp] = start
            return
        log.warning(
            "record dropped before processing; reading it again topic=%s partition=%s offset=%s acked_from=%s",
            tp.topic,
            tp.partition,
            expected,
            min(self._acked[tp], default=None),
        )
        self._metrics().offset_repairs.labels("read_again").inc()
        await self._seek_if_still_assigned(tp, expected)

    @Service.timer(STALL_CHECK_S)
    async def _flts_watch_idle(self) -> None:
        """Every STALL_CHECK_S: read idle partitions again (item 4 above)."""
        await self.read_idle_partitions_again(time.monotonic())

    async def read_idle_partitions_again(self, now: float) -> None:
        """Seek back the partitions idle since STALL_AFTER_S before ``now`` with records beyond their commit."""
        if self.app.rebalancing or not self.flow_active:
            self._flts_idle_since.clear()
            return
        idle = self._idle_partitions()
        self._flts_idle_since = {tp: seen for tp, seen in self._flts_idle_since.items() if idle.get(tp) == seen[0]}
        for tp, expected in idle.items():
            since = self._flts_idle_since.setdefault(tp, (expected, now))[1]
            if now - since >= STALL_AFTER_S:
                self._flts_idle_since[tp] = (expected, now)
                await self._read_idle_again(tp, expected)

    def _idle_partitions(self) -> dict[TP, int]:
        """Assigned stream partitions (and next offsets) with records beyond the commit, none of them in process."""
        skip = self._paused_partitions | self._buffered_partitions
        changelogs = self.app.tables.changelog_topics
        in_flight = {message.tp for message in self._unacked_messages}
        idle = {}
        for tp in self.assignment():
            if tp in skip or tp.topic in changelogs:
                continue
            committed = self._committed_offset.get(tp)
            expected = committed if committed is not None else self._flts_expected.get(tp)
            if idle_with_records(expected, self._known_highwater(tp), tp in in_flight, bool(self._acked.get(tp))):
                idle[tp] = cast(int, expected)
        return idle

    def _known_highwater(self, tp: TP) -> int | None:
        """The partition's highwater from the last fetch, None before one."""
        try:
            return self.highwater(tp)
        except (AssertionError, KeyError, TypeError):
            return None

    async def _read_idle_again(self, tp: TP, expected: int) -> None:
        """Seek an idle partition back to its commit, fetching it again if Faust took it off its active set."""
        active = tp in self._get_active_partitions()
        log.warning(
            "partition idle with records beyond its commit; reading it again "
            "topic=%s partition=%s offset=%s highwater=%s read_offset=%s active=%s",
            tp.topic,
            tp.partition,
            expected,
            self._known_highwater(tp),
            self._read_offset.get(tp),
            active,
        )
        self._metrics().offset_repairs.labels("idle_read_again").inc()
        if not active:
            self.resume_partitions({tp})
        await self._seek_if_still_assigned(tp, expected)

    async def _seek_if_still_assigned(self, tp: TP, offset: int) -> None:
        """Seek ``tp`` back to ``offset`` for a repair; a partition revoked since the repair was decided is skipped.

        Why: a repair awaits (the log start, the partitions before it) and a rebalance can take the partition
        meanwhile; aiokafka's seek then raises IllegalStateError, which crashed the consumer service and with
        it the worker (CI, the rebalance test). The next owner starts from the commit, which is before the
        records this repair was for, so it reads them itself.
        """
        try:
            await self.seek(tp, offset)
        except IllegalStateError:
            log.info("repair skipped: partition revoked before the seek topic=%s partition=%s", tp.topic, tp.partition)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        """Faust's fetched records, without those already processed and waiting for their commit."""
        async for tp, message in super().getmany(timeout):
            if message.offset not in self._acked_index.get(tp, ()):
                yield tp, message

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Record nothing: a jump in offsets here means Faust dropped records, not that none exist."""
        if self._acked_index.get(tp, set()).issuperset(range(offset_from, offset_to)):
            return  # skipped by getmany above: processed already
        log.info(
            "offsets skipped by the fetch loop; commits wait for them topic=%s partition=%s offsets=%s-%s",
            tp.topic,
            tp.partition,
            offset_from,
            offset_to - 1,
        )


class FltsConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with two fixes: a shorter fetch wait, and a stop that survives a broker outage.

    1. The worker consumer waits FETCH_MAX_WAIT_MS for records instead of 1.5 s. Faust hard-codes
       ``fetch_max_wait_ms=1500`` (faust/transport/drivers/aiokafka.py, ``_create_worker_consumer``;
       aiokafka's and Kafka's default is 500). A broker answers one request of a connection at a time, so
       every offset request (the committed offsets and rewinds of each start-up and rebalance) queued
       behind a fetch that waited out those 1.5 s on idle partitions: start-up to ready took 11.8 s,
       15.3 s when the group had been there before (three such requests); docs/ARCHITECTURE.md has the
       figures. A fetch still returns the moment records arrive, so this changes no latency under load;
       idle partitions cost two fetches a second instead of two thirds.
    2. The consumer is stopped by ``consumer_stop.stop_consumer`` (see there): with the broker
       unreachable, aiokafka's own stop raised and the thread died without telling the worker, which
       then waited its 60 s shutdown timeout for it.

    Pinned by tests/test_flts_streams/test_kafka/test_seek_safe_consumer.py and
    tests/integration/test_consumer_quirks.py.
    """

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it creates its fetcher; no public setting exists.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # noqa: SLF001
        return consumer

    async def on_thread_stop(self) -> None:
        """Faust's on_thread_stop (the method queue, then the consumer), the consumer stopped by stop_consumer."""
        # Faust's own body, with stop_consumer for its consumer.stop() (the test pins Faust's source).
        await super(faust_aiokafka.AIOKafkaConsumerThread, self).on_thread_stop()
        if self._consumer is not None:
            await stop_consumer(self._consumer)


class SeekSafeTransport(faust_aiokafka.Transport):
    """The aiokafka transport with the consumer above."""

    Consumer = SeekSafeConsumer
