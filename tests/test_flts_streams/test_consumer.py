"""Which partitions the consumer rewinds after a rebalance, and that the app uses that consumer."""
from __future__ import annotations

from faust.types import TP

from flts_streams import consumer
from flts_streams.app import app


def test_never_committed_picks_stream_partitions_without_an_offset():
    committed = {TP("inference-data", 1): -1, TP("inference-data", 0): None, TP("inference-data", 2): 0,
                 TP("inference-data", 3): 17, TP("flts-streams-latest_frames-changelog", 0): -1}
    assert consumer.never_committed(committed, ["flts-streams-latest_frames-changelog"]) == [
        TP("inference-data", 0), TP("inference-data", 1), TP("inference-data", 2)]


def test_never_committed_is_empty_once_everything_is_committed():
    assert consumer.never_committed({TP("inference-data", 0): 4}, []) == []


def test_app_consumes_through_the_rewinding_consumer():
    assert app.transport.Consumer is consumer.Consumer
