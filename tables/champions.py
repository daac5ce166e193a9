"""champions (GlobalTable): identifier (or "*") -> serving model decision, on every worker."""

from flts_streams.app import app

champions = app.GlobalTable(
    "champions",
    default=None,
    key_type=bytes,  # raw keys: the same bytes (and partitions) as the claims topic
    partitions=app.settings.topics.partitions,
    options=app.settings.rocksdb_options(),  # bounded memory: flts_streams/core/settings.py
    # Every worker reads every changelog partition as a standby, so promotions written by
    # another worker arrive at runtime (without it: only at the next rebalance, faust-streaming #283).
    synchronize_all_active_partitions=True,
    help="Champion model per identifier",
)
