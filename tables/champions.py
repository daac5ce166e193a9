"""champions (GlobalTable): identifier (or "*") -> serving model decision, on every worker."""
from flts_streams.app import app

champions = app.GlobalTable(
    "champions",
    default=None,
    key_type=bytes,  # raw keys: the same bytes (and partitions) as the claims topic
    partitions=app.settings.topics.partitions,
    help="Champion model per identifier",
)
