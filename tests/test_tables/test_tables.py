"""Table declarations: changelog names, co-partitioning with the claims topic, value codecs."""

from __future__ import annotations

import numpy as np
import pytest

from flts_streams.app import app
from flts_streams.forecasting.demo import demo_prepared_frame
from flts_streams.models.promotion import Decision, champion_from_table
from flts_streams.streaming.frame_codec import decode_frame, encode_frame
from tables.champions import champions
from tables.forecast_accuracy import forecast_accuracy
from tables.latest_frames import latest_frames
from tables.target_history import target_history

IDENTIFIERS = ["PobleSec", "Les Corts", "elBorn", "cell-0042", "*", "ñandú"]


def _roundtrip(table, value):
    """A value as the changelog carries it, and as a recovering worker decodes it."""
    data, _ = table.changelog_topic.prepare_value(value, None)
    return data, app.serializers.loads_value(table.value_type, data, serializer=table.value_serializer)


def test_changelog_topics_keep_their_names():
    # Renaming a table orphans its changelog: every worker would start with an empty table.
    assert latest_frames.changelog_topic.get_topic_name() == "flts-streams-latest_frames-changelog"
    assert champions.changelog_topic.get_topic_name() == "flts-streams-champions-changelog"


@pytest.mark.parametrize("table", [latest_frames, champions], ids=lambda t: t.name)
def test_keys_are_the_claim_keys_so_a_table_shard_is_its_claims_partition(table):
    claims = app.kafka_topics.inference
    assert table.changelog_topic.partitions == claims.partitions == app.settings.topics.partitions
    for identifier in IDENTIFIERS:
        # web/predict.py looks owners up by str, the claims agent writes under the event's key bytes:
        # both must serialize to the bytes the claims topic is keyed by.
        assert table.changelog_topic.prepare_key(identifier, None)[0] == identifier.encode()
        assert table.changelog_topic.prepare_key(identifier.encode(), None)[0] == identifier.encode()


def test_latest_frames_values_are_the_arrow_bytes_unchanged():
    frame = demo_prepared_frame().tail(48)
    payload = encode_frame(frame)
    data, decoded = _roundtrip(latest_frames, payload)
    assert data == payload and decoded == payload  # raw: never JSON-encoded or decoded on the way
    back = decode_frame(decoded)
    assert back.columns == frame.columns and back.cadence == frame.cadence
    np.testing.assert_array_equal(back.timestamps, frame.timestamps)
    np.testing.assert_array_equal(back.values, frame.values)


def test_champions_values_come_back_as_the_decision_that_wrote_them():
    decision = Decision("PobleSec", "models:/flts-PobleSec/3", "run-3", True, "better", candidate_mae=1.5)
    written = decision.champion()
    _, decoded = _roundtrip(champions, written.model_dump(mode="json"))  # what agents/models.py writes
    assert champion_from_table(decoded) == written


def test_faust_rocksdb_defaults_are_still_too_large_for_many_table_partitions():
    """Pins Faust's per-database defaults our bounded options replace (flts_streams/core/settings.py).

    One RocksDB per table and partition, each with 64 MB memtables (up to 3) and a 2 GB read cache:
    a 100k-claim burst over 2,000 identifiers grew a worker by ~1 GB. If an upgrade changes them,
    revisit FLTS_STREAMING__ROCKSDB_*.
    """
    from faust.stores.rocksdb import RocksDBOptions

    defaults = RocksDBOptions()
    assert (defaults.write_buffer_size, defaults.max_write_buffer_number) == (64 * 2**20, 3)
    assert defaults.block_cache_size == 2 * 2**30


@pytest.mark.parametrize("table", [latest_frames, target_history, forecast_accuracy, champions], ids=lambda t: t.name)
def test_every_table_opens_rocksdb_with_bounded_memory(table):
    from faust.stores.rocksdb import RocksDBOptions

    options = RocksDBOptions(**table.options)
    assert options.write_buffer_size * options.max_write_buffer_number <= 16 * 2**20
    assert options.block_cache_size <= 64 * 2**20
