"""latest_frames: identifier -> newest processed frame tail (Arrow IPC bytes), RocksDB + changelog."""

from flts_streams.app import app

latest_frames = app.Table(
    "latest_frames",
    default=None,
    key_type=bytes,  # raw keys: the same bytes (and partitions) as the claims topic
    value_type=bytes,
    partitions=app.settings.topics.partitions,
    options=app.settings.rocksdb_options(),  # bounded memory: flts_streams/core/settings.py
    help="Newest prepared frame tail per identifier",
)
