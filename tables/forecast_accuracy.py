"""forecast_accuracy: identifier -> its issued forecasts and live scores (streaming/live_accuracy.py), RocksDB."""

from flts_streams.app import app

forecast_accuracy = app.Table(
    "forecast_accuracy",
    default=None,
    key_type=bytes,  # raw keys, as latest_frames: the same partitions as the claims topic
    value_type=bytes,
    partitions=app.settings.topics.partitions,
    options=app.settings.rocksdb_options(),  # bounded memory: flts_streams/core/settings.py
    help="Forecasts issued for claims per identifier and their scores against later actuals",
)
