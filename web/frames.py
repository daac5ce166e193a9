"""Inspect the cached frame of an identifier (routed to the owning worker)."""

from faust.web import Request, Response, View

from flts_streams.app import app
from flts_streams.core.errors import UnknownIdentifier
from flts_streams.streaming.frame_codec import decode_frame
from flts_streams.streaming.target_history import decode_history
from tables.latest_frames import latest_frames
from tables.target_history import target_history


@app.page("/frames/{identifier}")
class Frame(View):
    """Summary of latest_frames[identifier] (rows, columns, time span, cadence) and of the history kept for it."""

    @app.table_route(table=latest_frames, match_info="identifier")  # type: ignore[arg-type]  # faust's hint omits match_info arguments
    async def get(self, request: Request, identifier: str) -> Response:
        payload = latest_frames.get(identifier)
        if payload is None:
            raise UnknownIdentifier(f"nothing cached for identifier {identifier!r}; publish a claim for it first")
        frame = decode_frame(payload)
        return self.json(
            {
                "identifier": identifier,
                "rows": len(frame),
                "columns": list(frame.columns),
                "first": str(frame.timestamps[0]),
                "last": str(frame.timestamps[-1]),
                "cadence_s": int(frame.cadence.astype("timedelta64[s]").astype(int)),
                "bytes": len(payload),
                "history": _history_summary(target_history.get(identifier)),
            }
        )


def _history_summary(payload: bytes | None) -> dict[str, object] | None:
    """What target_history keeps for the identifier (None: nothing, e.g. its model reads no history)."""
    if payload is None:
        return None
    kept = decode_history(payload)
    return {"column": kept.column, "rows": len(kept.values), "last_ns": kept.last_ns, "bytes": len(payload)}
