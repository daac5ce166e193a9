"""target_history: identifier -> recent values of its first target (streaming/target_history.py), RocksDB."""

from flts_streams.app import app

target_history = app.Table(
    "target_history",
    default=None,
    key_type=bytes,  # raw keys, as latest_frames: the same partitions as the claims topic
    value_type=bytes,
    partitions=app.settings.topics.partitions,
    options=app.settings.rocksdb_options(),  # bounded memory: flts_streams/core/settings.py
    help="Recent values of the first target per identifier, for models that read history",
)
