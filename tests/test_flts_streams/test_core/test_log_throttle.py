"""The broker client's repeated log lines: the first of a kind per interval passes, the next counts the rest."""

from __future__ import annotations

import io
import logging

import pytest
from mode.utils.logging import ExtensionFormatter

from flts_streams.core import log_throttle
from flts_streams.core.log_throttle import RepeatThrottle, throttle_repeats

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
