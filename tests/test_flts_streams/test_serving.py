"""Request parsing for /predict: media type, types, limits, NaN/Infinity."""
from __future__ import annotations

import json

import pytest

from flts_streams.errors import InvalidInput, RequestTooLarge, SchemaError, UnsupportedMediaType
from flts_streams.serving import parse_predict
from flts_streams.settings import ServingSettings

LIMITS = ServingSettings(max_rows=100)


def test_query_inference_length_and_defaults():
    req = parse_predict(b'{"identifier": "A"}', "application/json", {"inference_length": "5"}, LIMITS)
    assert req.inference_length == 5 and req.data is None
    assert parse_predict(b"", "", {}, LIMITS).identifier is None


@pytest.mark.parametrize("body,ctype,exc", [
    (b"{}", "text/plain", UnsupportedMediaType),
    (b"{nope", "application/json", UnsupportedMediaType),
    (b"[1, 2]", "application/json", SchemaError),
    (b'{"inference_length": "x"}', "application/json", SchemaError),
    (b'{"inference_length": 0}', "application/json", SchemaError),
    (b'{"data": [1, 2]}', "application/json", SchemaError),
    (b'{"data": {"ts": [NaN]}}', "application/json", InvalidInput),
    (b'{"data": {"ts": [Infinity]}}', "application/json", InvalidInput),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", SchemaError),
])
def test_bad_requests(body, ctype, exc):
    with pytest.raises(exc):
        parse_predict(body, ctype, {}, LIMITS)


def test_too_many_rows():
    body = json.dumps({"data": {"ts": list(range(101))}}).encode()
    with pytest.raises(RequestTooLarge, match="101 rows"):
        parse_predict(body, "application/json", {}, LIMITS)


@pytest.mark.parametrize("body", [
    {"identifier": "A", "data": {"ts": ["2024-01-01 00:00:00"], "down": [1.5]}, "index_col": "ts", "inference_length": 3},
    {"identifier": "NaN-site", "data": {"ts": ["2024-01-01"], "down": ["1.5"]}},  # 'NaN' inside a string is fine
    {"data": {"down": [None, 2]}, "extra": {"ignored": True}},
])
def test_fast_and_strict_parsers_agree(body):
    from flts_streams.serving import _parse_fast, _parse_strict

    raw = json.dumps(body).encode()
    assert parse_predict(raw, "application/json", {}, LIMITS) == _parse_strict(raw)
    fast = _parse_fast(raw)
    assert fast is None or fast == _parse_strict(raw)


def test_query_horizon_is_validated_like_the_body():
    with pytest.raises(SchemaError, match="inference_length"):
        parse_predict(b'{"identifier": "A"}', "application/json", {"inference_length": "0"}, LIMITS)
