"""Topic declarations, and the Faust decoding behaviour that makes them raw (docs/ARCHITECTURE.md, "Known traps")."""

from __future__ import annotations

import faust
from faust.types import Message

from flts_streams.core.settings import TopicSettings
from flts_streams.kafka.topics import declare_topics

JSON_BYTES = b'{"identifier": "PobleSec", "object_key": "claims/a.parquet"}'


def _message(value: bytes) -> Message:
    return Message(
        topic="t",
        partition=0,
        offset=0,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=b"k",
        value=value,
        checksum=None,
    )


def _app() -> faust.App:
    return faust.App(f"topics-test-{id(object())}", broker="memory://", store="memory://")


async def test_faust_decodes_json_even_for_value_type_bytes():
    # The trap: value_type=bytes is not enough, the app's default serializer still parses JSON.
    # If this starts returning bytes, value_serializer="raw" is no longer needed for it.
    event = await _app().topic("t", value_type=bytes).decode(_message(JSON_BYTES))
    assert event.value == {"identifier": "PobleSec", "object_key": "claims/a.parquet"}


async def test_every_service_topic_hands_agents_the_bytes_as_sent():
    topics = declare_topics(_app(), TopicSettings())
    for topic in (topics.inference, topics.training, topics.results, topics.selected, topics.dead_letter):
        event = await topic.decode(_message(JSON_BYTES))
        assert (event.key, event.value) == (b"k", JSON_BYTES), topic.get_topic_name()
    # Not JSON at all (a poison claim) reaches the agent too, to be dead-lettered there with a reason.
    assert (await topics.inference.decode(_message(b"\xff not json"))).value == b"\xff not json"
