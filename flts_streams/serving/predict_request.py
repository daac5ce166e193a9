"""Plain /predict request logic: parse and validate bodies into frames (no aiohttp here; answers: answers.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic import ValidationError

from flts_streams.core.errors import (
    InvalidInput,
    MalformedBody,
    NotEnoughRows,
    RequestTooLarge,
    SchemaError,
    UnsupportedMediaType,
)
from flts_streams.core.schemas import HORIZON_MAX, IDENTIFIER_MAX, PredictRequest
from flts_streams.core.settings import ServingSettings
from flts_streams.forecasting.frame import PreparedFrame, prepare_frame
from flts_streams.forecasting.spec import ModelSpec
from flts_streams.serving.native_body import NativeColumns, parse_body


class ParsedRequest(NamedTuple):
    """A /predict body as PredictRequest validates it (the schema); a tuple, cheap to build per request."""

    identifier: str | None = None
    data: dict[str, list[Any]] | None = None
    index_col: str | None = None
    inference_length: int | None = None
    # The data instead, when the native parser read the body (flts_streams/serving/native_body.py).
    native: NativeColumns | None = None
    quantiles: tuple[float, ...] | None = None  # quantile levels asked for (body field or ?quantiles=0.1,0.9)

    @property
    def has_data(self) -> bool:
        """True when the body carries data to forecast from (else: the cached frame)."""
        return self.native is not None or bool(self.data)

    @property
    def rows(self) -> int:
        """Rows of the longest data column."""
        if self.native is not None:
            return self.native.rows
        return max((len(v) for v in self.data.values()), default=0) if self.data else 0


def check_body_encoding(content_encoding: str | None) -> None:
    """Bodies are taken as sent: a compressed one is refused before it is read (the server never inflates it)."""
    if content_encoding and content_encoding.strip().lower() != "identity":
        raise UnsupportedMediaType(
            f"Content-Encoding {content_encoding[:40]!r} is not accepted; send the JSON body uncompressed"
        )


def parse_predict(body: bytes, content_type: str, query: Mapping[str, str], limits: ServingSettings) -> ParsedRequest:
    """Body + query -> ParsedRequest (415 not JSON, 422 wrong types, 413 too many rows)."""
    if content_type and "json" not in content_type:
        raise UnsupportedMediaType(f"send application/json, not {content_type}")
    req = _parse_native(body) or _parse_explaining(body)
    if "inference_length" in query and req.inference_length is None:
        horizon = _validate({"inference_length": _int_query(query["inference_length"])}).inference_length
        req = req._replace(inference_length=horizon)
    if "quantiles" in query and req.quantiles is None:
        req = req._replace(quantiles=quantiles_query(query["quantiles"]))
    if req.rows > limits.max_rows:
        raise RequestTooLarge(
            f"{req.rows} rows exceed the limit of {limits.max_rows}; send only the recent rows the model needs"
        )
    return req


def _parse_native(body: bytes) -> ParsedRequest | None:
    """The usual body, read natively into numpy columns; None when the Python path must decide."""
    parsed = parse_body(body)
    if parsed is None or not _plain_fields(parsed.identifier, parsed.index_col, parsed.inference_length):
        return None
    return ParsedRequest(parsed.identifier, None, parsed.index_col, parsed.inference_length, native=parsed.data)


def _plain_fields(identifier: Any, index_col: Any, horizon: Any) -> bool:
    """True when the scalar fields are what PredictRequest accepts unchanged (a test compares both)."""
    if identifier is not None and (type(identifier) is not str or not 1 <= len(identifier) <= IDENTIFIER_MAX):
        return False
    if horizon is not None and (type(horizon) is not int or not 1 <= horizon <= HORIZON_MAX):
        return False
    return index_col is None or type(index_col) is str


def _from_model(model: PredictRequest) -> ParsedRequest:
    quantiles = tuple(model.quantiles) if model.quantiles is not None else None
    return ParsedRequest(model.identifier, model.data, model.index_col, model.inference_length, quantiles=quantiles)


def _parse_explaining(body: bytes) -> ParsedRequest:
    """The one explaining path: every body the native parser leaves, read by the JSON spec and the schema,
    with a message naming what is wrong (invalid JSON, NaN/Infinity, nesting, wrong types)."""
    if body.strip():
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedBody(f"body is not valid JSON: {exc}") from exc
        except ValueError as exc:  # e.g. an integer literal of more than 4,300 digits (CPython's int limit)
            raise MalformedBody(f"body is not usable JSON: {str(exc)[:200]}") from exc
        except RecursionError as exc:
            raise SchemaError("JSON nested too deeply") from exc
    else:
        payload = {}
    if not isinstance(payload, dict):
        raise SchemaError("body must be a JSON object with identifier, data, index_col, inference_length")
    return _validate(payload)


def _validate(payload: dict[str, Any]) -> ParsedRequest:
    try:
        return _from_model(PredictRequest.model_validate(payload))
    except ValidationError as exc:
        raise SchemaError(
            "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5])
        ) from exc


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a valid number; send finite numbers only")


def _int_query(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise SchemaError(f"inference_length must be an integer; got {raw!r}") from exc


def quantiles_query(raw: str) -> tuple[float, ...]:
    """``0.1,0.9`` -> (0.1, 0.9), validated as the body field is."""
    try:
        levels = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError as exc:
        raise SchemaError(f"quantiles must be comma-separated numbers, e.g. 0.1,0.9; got {raw[:100]!r}") from exc
    parsed = _validate({"quantiles": levels}).quantiles
    return tuple(parsed) if parsed is not None else ()


def horizon_query(query: Mapping[str, str]) -> int | None:
    """inference_length from the query string, if any."""
    return _int_query(query["inference_length"]) if "inference_length" in query else None


def request_frame(req: ParsedRequest, spec: ModelSpec) -> PreparedFrame:
    """Strictly validated frame of the request's data (no imputation) for a model of ``spec``."""
    if req.rows < spec.window:  # before any other check: the first answer names the real minimum
        raise NotEnoughRows(
            f"need at least {spec.window} rows (the model's input window, one row every "
            f"{spec.cadence_s:g}s); got {req.rows}"
        )
    features = spec.features
    if req.native is not None:
        frame = req.native.regular_frame(features, req.index_col)
        if frame is not None:
            return frame
        req = _parse_explaining(req.native.body)  # not the clean, regular case: the full checks name what is wrong
    assert req.data is not None
    return prepare_frame(req.data, required=features, index_col=req.index_col)
