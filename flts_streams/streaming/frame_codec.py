"""Serialization of prepared frames for the latest_frames table (Arrow IPC)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flts_streams.forecasting.frame import PreparedFrame

_TIME = "__ts__"


def encode_frame(frame: PreparedFrame) -> bytes:
    """Arrow IPC stream bytes; cadence kept in schema metadata."""
    arrays = [pa.array(frame.timestamps.astype("datetime64[ns]"))] + [
        pa.array(frame.values[:, j]) for j in range(len(frame.columns))
    ]
    meta = {b"cadence_ns": str(int(frame.cadence.astype("timedelta64[ns]").astype(np.int64))).encode()}
    table = pa.table(arrays, names=[_TIME, *frame.columns]).replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    # Uncompressed: zstd saved nothing on a claim's 60 rows of noisy floats (7,168 against 7,192 bytes) and 12%
    # at 1,000 rows, for 460 us a frame against 45 (11% of a claim burst's CPU). Values written compressed
    # before still decode: the reader follows each stream's own header.
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode_frame(payload: bytes) -> PreparedFrame:
    """Inverse of encode_frame."""
    table = pa.ipc.open_stream(payload).read_all()
    cadence = np.timedelta64(int(table.schema.metadata[b"cadence_ns"]), "ns")
    columns = tuple(n for n in table.column_names if n != _TIME)
    values = (
        np.column_stack([table.column(c).to_numpy() for c in columns]) if columns else np.empty((table.num_rows, 0))
    )
    ts = table.column(_TIME).to_numpy().astype("datetime64[ns]")
    return PreparedFrame(ts, columns, values.astype(np.float64), cadence)
