"""Topic declarations (names come from settings)."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from flts_streams.core.settings import TopicSettings


@dataclass(frozen=True)
class Topics:
    """The service's Kafka topics."""

    inference: faust.TopicT
    training: faust.TopicT
    results: faust.TopicT
    selected: faust.TopicT
    dead_letter: faust.TopicT
    training_requests: faust.TopicT

    @property
    def names(self) -> tuple[str, ...]:
        """All topic names (for creation on the embedded broker)."""
        return tuple(
            t.get_topic_name()
            for t in (
                self.inference,
                self.training,
                self.results,
                self.selected,
                self.dead_letter,
                self.training_requests,
            )
        )


def declare_topics(app: faust.App, names: TopicSettings) -> Topics:
    """Declare topics; consumers decode bytes themselves (raw), producers send JSON bytes."""

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=names.partitions)

    return Topics(
        inference=topic(names.inference),
        training=topic(names.training),
        results=topic(names.results),
        selected=topic(names.selected),
        dead_letter=topic(names.dead_letter),
        training_requests=topic(names.training_requests),
    )
