"""Flow-control observability: a Faust sensor for buffer-full events and processed offsets, plus lag/depth sampling."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust import Sensor
from faust.types import TP, Message

from flts_streams.core.metrics import Metrics

log = logging.getLogger(__name__)


class FlowSensor(Sensor):
    """Counts stream-buffer-full events (Faust's Prometheus sensor omits them) and tracks processed offsets."""

    def __init__(self, metrics: Metrics, topics: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        self.topics = frozenset(topics)
        self.processed: dict[TP, int] = {}

    def on_topic_buffer_full(self, tp: TP) -> None:
        """A partition's buffer filled: Faust pauses fetching it until the stream drains."""
        self.metrics.buffer_full.labels(tp.topic).inc()

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        """Every stream finished the message: it is eligible for commit."""
        if tp.topic in self.topics:
            self.processed[tp] = max(offset, self.processed.get(tp, -1))

    def lag(self, highwater: dict[TP, int], committed: Mapping[TP, int]) -> dict[TP, int]:
        """Messages not yet processed per partition: highwater minus the next offset to process.

        The next offset is the later of this process's last processed + 1 and the group's committed
        offset: a worker that just took a partition over has processed nothing of it yet, and its lag
        is what lies beyond the commit, not the whole partition.
        """
        return {
            tp: max(0, hw - max(self.processed.get(tp, -1) + 1, committed.get(tp) or 0))
            for tp, hw in highwater.items()
            if tp.topic in self.topics
        }


def sample(app: Any, sensor: FlowSensor) -> None:
    """Update buffer depth, paused partitions and consumer lag gauges from the running app."""
    metrics = sensor.metrics
    depth: dict[str, int] = {}
    for channel in app.topics:  # the conductor's subscribed channels (agents' streams)
        for name in getattr(channel, "topics", ()):
            if name in sensor.topics:
                depth[name] = depth.get(name, 0) + channel.queue.qsize()
    for name, size in depth.items():
        metrics.buffer_depth.labels(name).set(size)
    consumer = app.consumer
    # Flow control pauses partitions whose buffers filled; private but the only place it lives.
    metrics.paused_partitions.set(len(getattr(consumer, "_paused_partitions", ())))
    highwater = {}
    for tp in consumer.assignment():
        if tp.topic in sensor.topics:
            try:
                highwater[tp] = consumer.highwater(tp)
            except (AssertionError, KeyError, TypeError):  # not fetched yet: no highwater known
                continue
    known = {tp: hw for tp, hw in highwater.items() if hw is not None}
    for tp, lag in sensor.lag(known, consumer.committed_offsets()).items():
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
