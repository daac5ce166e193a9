"""A broker client's repeated log lines, throttled: the first of a kind per interval, the rest counted.

Why: while the broker is unreachable aiokafka logs at ERROR on every retry of every connection,
metadata update, fetch and coordinator lookup: ~2,300 lines in a 30-s outage of one worker
(measured, docs/RELIABILITY.md; upstream: aio-libs/aiokafka#1020, open), which buries the
service's own lines and bills log storage by the minute. A kind is a logger, a level and a message
template (``record.msg``, before its arguments), so "Unable connect to node with id %s: %s" is one
kind whatever the node. The first record of a kind in each interval passes; the next one to pass
says how many were held back since. When no next one comes (the outage is over), a reporter thread
logs the count once a whole interval has gone by with none of the kind.
Only loggers under the given prefixes are throttled: the service's own lines always pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

THROTTLED_LOGGERS = ("aiokafka",)  # the broker client; Faust's and ours are never held back
MAX_KINDS = 512  # message templates tracked at once; a pre-formatted message would make every line a new kind
_DECISION = "_flts_throttle_pass"  # set on a record: each root handler runs the filter, the decision is made once

Kind = tuple[str, int, str]
log = logging.getLogger(__name__)  # not under THROTTLED_LOGGERS: the reporter's lines always pass


@dataclass
class _Seen:
    since: float  # when the record that opened this interval passed
    held: int = 0  # records of the kind held back since then
    last: float = 0.0  # when the last of them was held back


@dataclass(frozen=True)
class HeldBack:
    """A kind's records held back with no later one of the kind to carry the count."""

    logger: str
    level: int
    template: str
    count: int
    last_s_ago: float


class RepeatThrottle(logging.Filter):
    """Passes the first record of each kind per ``interval_s``; the next to pass counts those held back."""

    def __init__(
        self,
        interval_s: float,
        prefixes: Iterable[str] = THROTTLED_LOGGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._prefixes = tuple(prefixes)
        self._clock = clock
        self._seen: dict[Kind, _Seen] = {}
        self._lock = threading.Lock()  # the consumer thread's loop logs too

    def filter(self, record: logging.LogRecord) -> bool:
        """True when ``record`` is to be emitted (a held-back count appended to its message)."""
        decided = getattr(record, _DECISION, None)
        if decided is not None:
            return bool(decided)
        passes = not self._throttled(record) or self._admit(record)
        setattr(record, _DECISION, passes)
        return passes

    def _throttled(self, record: logging.LogRecord) -> bool:
        name = record.name
        return any(name == p or name.startswith(p + ".") for p in self._prefixes)

    def _admit(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            seen = self._seen.get(kind)
            if seen is not None and now - seen.since < self.interval_s:
                seen.held += 1
                seen.last = now
                return False
            held = seen.held if seen is not None else 0
            if seen is None and len(self._seen) >= MAX_KINDS:
                self._forget_before(now - self.interval_s)
            self._seen[kind] = _Seen(now)
        if held:
            # The template keeps its own %-arguments; the count goes after them, once formatted.
            record.msg = f"{record.getMessage()} ({held} more like this held back since the last one shown)"
            record.args = ()  # formatters (mode's among them) map over args: empty, not None
        return True

    def take_unreported(self) -> list[HeldBack]:
        """Counts no record will carry: kinds with none for a whole interval after theirs; forgets them."""
        now = self._clock()
        # Two intervals since the last shown: during an outage the next record comes within the
        # retry back-off of its interval's end and carries the count itself, so nothing is said twice.
        cutoff = now - 2 * self.interval_s
        with self._lock:
            over = [(k, s) for k, s in self._seen.items() if s.since <= cutoff]
            for kind, _ in over:
                del self._seen[kind]
        return [HeldBack(k[0], k[1], k[2], s.held, now - s.last) for k, s in over if s.held]

    def _forget_before(self, cutoff: float) -> None:
        """Drop kinds whose interval is over (their held-back counts are lost), or all when none is."""
        stale = [k for k, s in self._seen.items() if s.since < cutoff]
        for k in stale or list(self._seen):
            del self._seen[k]


def report_unreported(throttle: RepeatThrottle, out: logging.Logger = log) -> None:
    """Log each count that no record of its kind will carry, one key=value line per kind."""
    for held in throttle.take_unreported():
        out.log(
            held.level,
            "repeats held back: logger=%s count=%d last_s_ago=%.0f message=%r",
            held.logger,
            held.count,
            held.last_s_ago,
            held.template,
        )


class UnreportedCounts(threading.Thread):
    """Every ``throttle.interval_s``, logs the counts no record will carry (the end of an outage)."""

    def __init__(self, throttle: RepeatThrottle) -> None:
        super().__init__(name="flts-log-throttle", daemon=True)  # never holds the process's exit
        self.throttle = throttle
        self.stopped = threading.Event()

    def run(self) -> None:
        """Report until stopped."""
        while not self.stopped.wait(self.throttle.interval_s):
            report_unreported(self.throttle)

    def stop(self) -> None:
        """End the thread at its next wake-up."""
        self.stopped.set()


def throttle_repeats(interval_s: float, handlers: Iterable[logging.Handler] | None = None) -> RepeatThrottle | None:
    """Attach one RepeatThrottle to ``handlers`` (default: the root logger's) and start its reporter; None at 0 s."""
    if interval_s <= 0:
        return None
    throttle = RepeatThrottle(interval_s)
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        handler.addFilter(throttle)
    UnreportedCounts(throttle).start()
    return throttle
