"""The broker client's repeated log lines: the first of a kind per interval passes, the next counts the rest."""

from __future__ import annotations

import io
import logging
import time

import pytest
from mode.utils.logging import ExtensionFormatter

from flts_streams.core import log_throttle
from flts_streams.core.log_throttle import (
    HeldBack,
    RepeatThrottle,
    UnreportedCounts,
    report_unreported,
    throttle_repeats,
)

CONNECT = "Unable connect to node with id %s: %s"  # aiokafka/client.py's line, logged on every retry


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(
    name: str = "aiokafka.client", msg: str = CONNECT, args: tuple = (0, "refused"), level: int = logging.ERROR
):
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def _shown(throttle: RepeatThrottle, records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if throttle.filter(r)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_repeats_within_the_interval_are_held_back_and_counted_by_the_next_line_shown(clock):
    throttle = RepeatThrottle(10.0, clock=clock)
    first = _shown(throttle, [_record(args=(n, "refused")) for n in range(5)])
    assert first == ["Unable connect to node with id 0: refused"]
    clock.now += 9.9
    assert _shown(throttle, [_record()]) == []
    clock.now += 0.1
    assert _shown(throttle, [_record(args=(7, "refused")), _record()]) == [
        "Unable connect to node with id 7: refused (5 more like this held back since the last one shown)"
    ]


def test_a_kind_is_a_logger_a_level_and_a_template_whatever_its_arguments(clock):
    throttle = RepeatThrottle(10.0, clock=clock)
    records = [
        _record(args=(1, "a")),
        _record(args=(2, "b")),  # same kind
        _record(level=logging.WARNING),
        _record(name="aiokafka.consumer.fetcher"),
        _record(msg="Unable to update metadata from %s", args=([0],)),
    ]
    assert len(_shown(throttle, records)) == 4


def test_only_the_broker_clients_loggers_are_throttled(clock):
    throttle = RepeatThrottle(10.0, clock=clock)
    for name in ("flts_streams.streaming.agents", "faust.transport.consumer", "aiokafkaish", "root"):
        assert len(_shown(throttle, [_record(name=name) for _ in range(3)])) == 3, name
    assert len(_shown(throttle, [_record(name="aiokafka") for _ in range(3)])) == 1


def test_each_handler_sees_the_same_decision_and_the_count_is_added_once(clock):
    throttle = RepeatThrottle(10.0, clock=clock)
    streams = [io.StringIO(), io.StringIO()]
    logger = logging.Logger("aiokafka.conn", logging.INFO)
    for stream in streams:
        handler = logging.StreamHandler(stream)
        handler.addFilter(throttle)
        logger.addHandler(handler)
    for _ in range(3):
        logger.error(CONNECT, 0, "refused")
    clock.now += 10
    logger.error(CONNECT, 0, "refused")
    for stream in streams:
        assert stream.getvalue().splitlines() == [
            "Unable connect to node with id 0: refused",
            "Unable connect to node with id 0: refused (2 more like this held back since the last one shown)",
        ]


def test_a_counted_line_formats_under_the_workers_formatter(clock):
    """mode's formatter maps over a record's args (a None became (None,): a logging error every line)."""
    throttle = RepeatThrottle(10.0, clock=clock)
    records = [_record(msg="odd %s %% line", args=("100%",)) for _ in range(3)]
    clock_steps = [0.0, 1.0, 10.0]
    out = []
    for record, step in zip(records, clock_steps):
        clock.now += step
        if throttle.filter(record):
            out.append(ExtensionFormatter(io.StringIO(), fmt="%(message)s").format(record))
    assert out == ["odd 100% % line", "odd 100% % line (1 more like this held back since the last one shown)"]


def test_kinds_tracked_stay_bounded_dropping_those_whose_interval_is_over(clock, monkeypatch):
    monkeypatch.setattr(log_throttle, "MAX_KINDS", 3)
    throttle = RepeatThrottle(10.0, clock=clock)
    assert _shown(throttle, [_record(msg=f"kind {n}", args=()) for n in range(2)]) == ["kind 0", "kind 1"]
    clock.now += 11
    assert _shown(throttle, [_record(msg="kind 2", args=()), _record(msg="kind 3", args=())]) == ["kind 2", "kind 3"]
    assert len(throttle._seen) == 2  # kinds 0 and 1 were over; 2 and 3 are tracked
    assert _shown(throttle, [_record(msg="kind 2", args=())]) == []
    # Full with none over: all are forgotten rather than growing without bound.
    assert _shown(throttle, [_record(msg=f"kind {n}", args=()) for n in range(4, 7)]) == ["kind 4", "kind 5", "kind 6"]
    assert len(throttle._seen) <= 3


def test_an_interval_of_zero_turns_throttling_off():
    handler = logging.StreamHandler(io.StringIO())
    assert throttle_repeats(0, [handler]) is None
    assert handler.filters == []
    throttle = throttle_repeats(5, [handler])
    assert handler.filters == [throttle]


def test_a_count_no_later_line_carries_is_reported_once_a_whole_interval_passes_without_the_kind(clock):
    throttle = RepeatThrottle(10.0, clock=clock)
    _shown(throttle, [_record() for _ in range(4)])  # one shown, three held: then the outage ends
    clock.now += 2
    _shown(throttle, [_record(msg="other %s", args=(1,))])  # shown, nothing held
    clock.now += 17.9
    assert throttle.take_unreported() == []  # the next line of the kind could still carry it
    clock.now += 0.1
    assert throttle.take_unreported() == [HeldBack("aiokafka.client", logging.ERROR, CONNECT, 3, 20.0)]
    clock.now += 2
    assert throttle.take_unreported() == []  # said once; "other" held none and is forgotten quietly
    assert throttle._seen == {}
    assert _shown(throttle, [_record()]) == ["Unable connect to node with id 0: refused"]  # a fresh kind again


def test_a_kind_that_keeps_repeating_carries_its_own_counts_and_none_is_reported_apart(clock):
    throttle = RepeatThrottle(10.0, clock=clock)
    shown = []
    for _ in range(100):  # an outage: a retry every 0.5 s for 50 s, the reporter looking every 10 s
        shown += _shown(throttle, [_record()])
        if clock.now % 10 == 0:
            assert throttle.take_unreported() == []
        clock.now += 0.5
    assert len(shown) == 5 and all("(19 more like this held back" in line for line in shown[1:])


def test_the_reporter_logs_a_key_value_line_at_the_kinds_level(clock, caplog):
    throttle = RepeatThrottle(10.0, clock=clock)
    _shown(throttle, [_record(), _record()])
    clock.now += 20
    with caplog.at_level(logging.INFO, logger="flts_streams.core.log_throttle"):
        report_unreported(throttle)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.ERROR,
            f"repeats held back: logger=aiokafka.client count=1 last_s_ago=20 message={CONNECT!r}",
        )
    ]
    assert not throttle._throttled(caplog.records[0])  # the reporter's own line always passes


def test_the_reporter_thread_reports_every_interval_until_stopped():
    throttle = RepeatThrottle(0.05)
    seen = io.StringIO()
    handler = logging.StreamHandler(seen)
    logger = logging.getLogger("flts_streams.core.log_throttle")
    logger.addHandler(handler)
    reporter = UnreportedCounts(throttle)
    try:
        _shown(throttle, [_record(), _record()])
        reporter.start()
        deadline = time.monotonic() + 30  # a busy machine may wake the thread late; it must wake
        while "count=1" not in seen.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "repeats held back: logger=aiokafka.client count=1" in seen.getvalue()
    finally:
        reporter.stop()
        reporter.join(5)
        logger.removeHandler(handler)
    assert not reporter.is_alive() and reporter.daemon
