"""Which partitions the consumer rewinds after a rebalance, and that the app uses that seek_safe_consumer."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from flts_streams.app import app
from flts_streams.kafka import seek_safe_consumer
from tests.test_flts_streams.helpers import source_statements


def test_never_committed_picks_stream_partitions_without_an_offset():
    committed = {
        TP("inference-data", 1): -1,
        TP("inference-data", 0): None,
        TP("inference-data", 2): 0,
        TP("inference-data", 3): 17,
        TP("flts-streams-latest_frames-changelog", 0): -1,
    }
    assert seek_safe_consumer.never_committed(committed, ["flts-streams-latest_frames-changelog"]) == [
        TP("inference-data", 0),
        TP("inference-data", 1),
        TP("inference-data", 2),
    ]


def test_never_committed_is_empty_once_everything_is_committed():
    assert seek_safe_consumer.never_committed({TP("inference-data", 0): 4}, []) == []


def test_app_consumes_through_the_rewinding_consumer():
    assert app.transport.Consumer is seek_safe_consumer.SeekSafeConsumer


def _consumer_with(tp: TP, acked: list[int], committed: int | None = None, expected: int | None = None):
    c = app.consumer
    c._acked[tp] = list(acked)
    c._acked_index[tp] = set(acked)
    c._committed_offset[tp] = committed
    c._gap.pop(tp, None)
    c._flts_blocked_since.pop(tp, None)
    c._flts_read_again.pop(tp, None)
    if expected is not None:
        c._flts_expected[tp] = expected
    return c


def test_faust_still_commits_past_a_missing_head_offset():
    # The trap the consumer guards (docs/ARCHITECTURE.md, "Known traps"): if Faust fixes it, this fails
    # and the guard can go.
    tp = TP("inference-data", 2)
    assert faust_aiokafka.Consumer._new_offset(_consumer_with(tp, [1]), tp) == 2  # never committed: 0 skipped
    tp = TP("inference-data", 3)
    assert faust_aiokafka.Consumer._new_offset(_consumer_with(tp, [32, 33], committed=31), tp) == 34  # 31 skipped
    # A jump seen by the fetch loop (read 11, next delivered 15) is filed as a gap and committed over.
    tp = TP("inference-data", 0)
    c = _consumer_with(tp, [10, 11], committed=10)
    asyncio.run(faust_aiokafka.Consumer._add_gap(c, tp, 12, 15))
    c._acked[tp].append(15)
    assert faust_aiokafka.Consumer._new_offset(c, tp) == 16  # 12-14 never acked


def test_no_commit_past_a_record_that_was_not_acked():
    tp = TP("inference-data", 2)
    assert _consumer_with(tp, [1, 2], expected=0)._new_offset(tp) is None
    tp = TP("inference-data", 3)
    assert _consumer_with(tp, [32, 33], committed=31)._new_offset(tp) is None


def test_commits_a_run_that_continues_from_the_expected_offset():
    tp = TP("inference-data", 0)
    assert _consumer_with(tp, [0, 1, 2], expected=0)._new_offset(tp) == 3
    tp = TP("inference-data", 1)
    assert _consumer_with(tp, [31, 32, 34], committed=31)._new_offset(tp) == 33


def test_head_missing_compares_with_the_next_expected_offset():
    assert seek_safe_consumer.head_missing([8, 9], 7) is True
    assert seek_safe_consumer.head_missing([8, 9], 8) is False
    assert seek_safe_consumer.head_missing([8, 9], None) is False  # nothing known: Faust decides
    assert seek_safe_consumer.head_missing([], 3) is False


def test_a_jump_in_fetched_offsets_is_not_stepped_over():
    # Faust files such a jump as offsets the broker skipped and commits past them (a lost claim).
    tp = TP("inference-data", 0)
    c = _consumer_with(tp, [10, 11], committed=10)
    asyncio.run(c._add_gap(tp, 12, 15))
    c._acked[tp] += [15, 16]
    assert c._new_offset(tp) == 12
    assert c._new_offset(tp) is None  # 12-14 never acked: the commit waits for them


def test_a_head_missing_for_long_is_read_again(monkeypatch):
    tp = TP("inference-data", 1)
    c = _consumer_with(tp, [5, 6], committed=4)
    seeks: list = []
    monkeypatch.setattr(type(c), "assignment", lambda self: {tp})
    monkeypatch.setattr(c, "_read_again", lambda partition, offset: seeks.append((partition, offset)))
    monkeypatch.setattr(c, "add_future", lambda awaitable: None)
    clock = iter([100.0, 100.0 + seek_safe_consumer.HEAL_AFTER_S / 2, 100.0 + seek_safe_consumer.HEAL_AFTER_S + 1])
    monkeypatch.setattr(seek_safe_consumer.time, "monotonic", lambda: next(clock))
    assert c._new_offset(tp) is None and seeks == []
    assert c._new_offset(tp) is None and seeks == []
    assert c._new_offset(tp) is None
    assert seeks == [(tp, 4)]


@pytest.mark.parametrize(
    ("expected", "highwater", "in_flight", "acked", "idle"),
    [
        (120, 1000, False, False, True),  # the CI stall: records beyond the commit, nothing being processed
        (120, 120, False, False, False),  # caught up
        (120, None, False, False, False),  # nothing fetched yet: no highwater known
        (None, 1000, False, False, False),  # no commit and no seek: nothing to go back to
        (120, 1000, True, False, False),  # a record is with the agent
        (120, 1000, False, True, False),  # processed, commit pending (or a missing head: read_again's case)
    ],
)
def test_idle_with_records_needs_records_beyond_the_commit_and_none_being_processed(
    expected, highwater, in_flight, acked, idle
):
    assert seek_safe_consumer.idle_with_records(expected, highwater, in_flight, acked) is idle


def _idle_consumer(monkeypatch, tp: TP, committed: int, highwater: int, seeks: list):
    """The app's consumer holding ``tp`` with nothing acked or in flight, its seeks recorded in ``seeks``."""
    c = _consumer_with(tp, [], committed=committed)
    c._flts_idle_since.clear()
    c._unacked_messages.clear()
    monkeypatch.setattr(type(c), "assignment", lambda self: {tp})
    monkeypatch.setattr(c, "highwater", lambda partition: highwater)
    monkeypatch.setattr(c, "flow_active", True)

    async def seek(partition, offset):
        seeks.append((partition, offset))

    monkeypatch.setattr(c, "seek", seek)
    return c


def test_a_partition_idle_with_records_beyond_its_commit_is_read_again(monkeypatch):
    tp, seeks = TP("inference-data", 3), []
    c = _idle_consumer(monkeypatch, tp, committed=120, highwater=1000, seeks=seeks)
    c._get_active_partitions().discard(tp)  # one way Faust stops fetching a partition; the repair resumes it
    before = c._metrics().offset_repairs.labels("idle_read_again")._value.get()
    asyncio.run(c.read_idle_partitions_again(100.0))
    asyncio.run(c.read_idle_partitions_again(100.0 + seek_safe_consumer.STALL_AFTER_S / 2))
    assert seeks == []
    asyncio.run(c.read_idle_partitions_again(100.0 + seek_safe_consumer.STALL_AFTER_S))
    assert seeks == [(tp, 120)]
    assert tp in c._get_active_partitions()
    assert c._metrics().offset_repairs.labels("idle_read_again")._value.get() == before + 1


def test_progress_restarts_the_idle_clock(monkeypatch):
    tp, seeks = TP("inference-data", 2), []
    c = _idle_consumer(monkeypatch, tp, committed=120, highwater=1000, seeks=seeks)
    asyncio.run(c.read_idle_partitions_again(100.0))
    c._committed_offset[tp] = 130  # a commit moved on: the partition is being consumed
    asyncio.run(c.read_idle_partitions_again(100.0 + seek_safe_consumer.STALL_AFTER_S))
    assert seeks == []
    asyncio.run(c.read_idle_partitions_again(100.0 + 2 * seek_safe_consumer.STALL_AFTER_S))
    assert seeks == [(tp, 130)]


def test_no_partition_is_read_again_during_a_rebalance_or_with_flow_stopped(monkeypatch):
    tp, seeks = TP("inference-data", 1), []
    c = _idle_consumer(monkeypatch, tp, committed=120, highwater=1000, seeks=seeks)
    asyncio.run(c.read_idle_partitions_again(100.0))
    monkeypatch.setattr(c, "flow_active", False)
    asyncio.run(c.read_idle_partitions_again(100.0 + seek_safe_consumer.STALL_AFTER_S))
    monkeypatch.setattr(c, "flow_active", True)
    asyncio.run(c.read_idle_partitions_again(100.0 + seek_safe_consumer.STALL_AFTER_S + 1))
    assert seeks == []  # the clock started again when flow resumed


class _FakeThread:
    """Consumer thread stand-in whose partitions start at ``start``."""

    def __init__(self, start: int) -> None:
        self.start = start

    def _ensure_consumer(self):
        return self

    def beginning_offsets(self, tps):
        return {tp: self.start for tp in tps}

    async def call_thread(self, fn, *args):
        return fn(*args)


@pytest.mark.parametrize(("log_start", "seeks", "committed"), [(0, [12], 10), (20, [], 20)])
def test_reading_again_seeks_back_unless_retention_removed_the_records(monkeypatch, log_start, seeks, committed):
    tp = TP("inference-data", 0)
    c = _consumer_with(tp, [15], committed=10)
    sought: list[int] = []

    async def seek(partition, offset):
        sought.append(offset)

    monkeypatch.setattr(c, "_thread", _FakeThread(log_start))
    monkeypatch.setattr(c, "seek", seek)
    action = "read_again" if seeks else "retention_removed"
    before = app.metrics.offset_repairs.labels(action)._value.get()
    asyncio.run(c._read_again(tp, 12))
    assert sought == seeks and c._committed_offset[tp] == committed
    assert app.metrics.offset_repairs.labels(action)._value.get() == before + 1


def test_a_partition_revoked_before_the_repairs_seek_is_left_to_its_next_owner(monkeypatch):
    # CI: a rebalance took the partition while _read_again awaited the log start; aiokafka's seek raised
    # IllegalStateError ("No current assignment") and crashed the consumer service, and the worker with it.
    from aiokafka.errors import IllegalStateError

    tp = TP("inference-data", 0)
    c = _consumer_with(tp, [15], committed=10)

    async def revoked(partition, offset):
        raise IllegalStateError(f"No current assignment for partition {partition}")

    monkeypatch.setattr(c, "_thread", _FakeThread(0))
    monkeypatch.setattr(c, "seek", revoked)
    monkeypatch.setattr(c, "_known_highwater", lambda partition: None)  # only logged
    asyncio.run(c._read_again(tp, 12))  # no exception
    asyncio.run(c._read_idle_again(tp, 10))
    assert c._committed_offset[tp] == 10  # nothing committed past the records the next owner reads


def test_a_head_still_missing_after_reading_again_is_committed_past(monkeypatch):
    # Offsets that hold no record (transaction markers, compaction) must not stall commits forever.
    tp = TP("inference-data", 3)
    c = _consumer_with(tp, [7, 8], committed=5)
    reads: list = []
    monkeypatch.setattr(type(c), "assignment", lambda self: {tp})
    monkeypatch.setattr(c, "_read_again", lambda partition, offset: reads.append(offset))
    monkeypatch.setattr(c, "add_future", lambda awaitable: None)
    t0, t1 = 100.0, 100.0 + seek_safe_consumer.HEAL_AFTER_S + 1
    clock = iter([t0, t1, t1 + seek_safe_consumer.HEAL_AFTER_S + 1, t1 + seek_safe_consumer.GIVE_UP_AFTER_S + 1])
    monkeypatch.setattr(seek_safe_consumer.time, "monotonic", lambda: next(clock))
    assert c._new_offset(tp) is None and reads == []  # first seen missing
    assert c._new_offset(tp) is None and reads == [5]  # read again
    assert c._new_offset(tp) is None and reads == [5]  # the re-read record may still be queued
    assert c._new_offset(tp) == 9 and reads == [5]  # still missing: nothing there, commit on


class _Msg:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_records_processed_since_the_head_are_not_handed_over_again(monkeypatch):
    # After a seek back to a dropped head (5) the fetcher re-delivers 5-8; 6 and 7 were processed.
    tp, other = TP("inference-data", 1), TP("inference-data", 2)
    c = _consumer_with(tp, [6, 7], committed=5)
    c._acked_index.pop(other, None)

    async def fetched(self, timeout):
        for partition, offset in [(tp, 5), (tp, 6), (tp, 7), (tp, 8), (other, 6)]:
            yield partition, _Msg(offset)

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", fetched)

    async def drain():
        return [(partition, m.offset) async for partition, m in c.getmany(timeout=1.0)]

    assert asyncio.run(drain()) == [(tp, 5), (tp, 8), (other, 6)]
    assert other not in c._acked_index  # looking did not create bookkeeping for other partitions


def test_a_jump_over_records_processed_already_is_not_logged(caplog):
    tp = TP("inference-data", 1)
    c = _consumer_with(tp, [6, 7], committed=5)
    with caplog.at_level("INFO", logger=seek_safe_consumer.__name__):
        asyncio.run(c._add_gap(tp, 6, 8))
        assert caplog.records == []
        asyncio.run(c._add_gap(tp, 6, 9))
    assert "offsets skipped by the fetch loop" in caplog.text


def test_committed_offsets_prefer_the_last_commit_over_the_seek():
    a, b, c = TP("lag-topic", 0), TP("lag-topic", 1), TP("lag-topic", 2)
    cons = app.consumer
    cons._flts_expected.update({a: 5, b: 7})
    cons._committed_offset.update({b: 9, c: None})
    try:
        known = cons.committed_offsets()
        assert (known[a], known[b]) == (5, 9)
        assert c not in known
    finally:
        for tp in (a, b, c):
            cons._flts_expected.pop(tp, None)
            cons._committed_offset.pop(tp, None)


def test_the_private_faust_api_the_consumer_relies_on_is_still_there():
    """Canary: seek_safe_consumer overrides or calls these private names; an upgrade that renames one fails here."""
    import inspect

    from faust.transport import consumer as faust_consumer
    from faust.transport.drivers import aiokafka as faust_aiokafka

    assert list(inspect.signature(faust_consumer.Consumer._new_offset).parameters) == ["self", "tp"]
    assert callable(faust_aiokafka.AIOKafkaConsumerThread._ensure_consumer)
    assert inspect.iscoroutinefunction(faust_aiokafka.AIOKafkaConsumerThread.call_thread)


async def _worker_consumer(thread_class: type) -> Any:
    """The aiokafka consumer ``thread_class`` creates for the app's worker (not started: no broker needed)."""
    return thread_class(
        app.consumer, loop=asyncio.get_running_loop(), beacon=app.consumer.beacon
    )._create_worker_consumer(app.transport)


async def test_faust_still_makes_its_worker_consumer_wait_1_5_s_for_records():
    # The trap FltsConsumerThread works around: if Faust changes its hard-coded fetch wait, this fails
    # and the override can be reconsidered.
    consumer = await _worker_consumer(faust_aiokafka.AIOKafkaConsumerThread)
    await consumer.stop()  # never started: only closes its client
    assert consumer._fetch_max_wait_ms == 1500


async def test_the_apps_worker_consumer_waits_at_most_half_a_second_for_records():
    assert isinstance(app.consumer._new_consumer_thread(), seek_safe_consumer.FltsConsumerThread)
    consumer = await _worker_consumer(seek_safe_consumer.FltsConsumerThread)
    await consumer.stop()
    assert consumer._fetch_max_wait_ms == seek_safe_consumer.FETCH_MAX_WAIT_MS == 500
    # ... and aiokafka still hands that attribute to the fetcher it creates at start (else the override does nothing).
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_our_consumer_thread_stops_as_faust_does_but_through_stop_consumer():
    # FltsConsumerThread.on_thread_stop replays Faust's body (it calls the method-queue step past Faust's class):
    # if Faust's changes, this fails and ours must follow it.
    assert source_statements(faust_aiokafka.AIOKafkaConsumerThread.on_thread_stop) == [
        "await super().on_thread_stop()",
        "if self._consumer is not None:",
        "await self._consumer.stop()",
    ]
    assert source_statements(seek_safe_consumer.FltsConsumerThread.on_thread_stop) == [
        "await super(faust_aiokafka.AIOKafkaConsumerThread, self).on_thread_stop()",
        "if self._consumer is not None:",
        "await stop_consumer(self._consumer)",
    ]
