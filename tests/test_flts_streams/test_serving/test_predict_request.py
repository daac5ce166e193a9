"""Request parsing for /predict: media type, types, limits, NaN/Infinity."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from flts_streams.core.errors import (
    InvalidInput,
    MalformedBody,
    NotEnoughRows,
    RequestTooLarge,
    SchemaError,
    UnsupportedMediaType,
)
from flts_streams.core.settings import ServingSettings
from flts_streams.serving.native_body import parse_body
from flts_streams.serving.predict_request import parse_predict, request_frame

LIMITS = ServingSettings(max_rows=100)


def test_query_inference_length_and_defaults():
    req = parse_predict(b'{"identifier": "A"}', "application/json", {"inference_length": "5"}, LIMITS)
    assert req.inference_length == 5 and req.data is None
    assert parse_predict(b"", "", {}, LIMITS).identifier is None


@pytest.mark.parametrize(
    "body,ctype,exc",
    [
        (b"{}", "text/plain", UnsupportedMediaType),
        (b"{nope", "application/json", MalformedBody),
        (b"[1, 2]", "application/json", SchemaError),
        (b'{"inference_length": "x"}', "application/json", SchemaError),
        (b'{"inference_length": 0}', "application/json", SchemaError),
        (b'{"data": [1, 2]}', "application/json", SchemaError),
        (b'{"data": {"ts": [NaN]}}', "application/json", InvalidInput),
        (b'{"data": {"ts": [Infinity]}}', "application/json", InvalidInput),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", SchemaError),
    ],
)
def test_bad_requests(body, ctype, exc):
    with pytest.raises(exc):
        parse_predict(body, ctype, {}, LIMITS)


def test_too_many_rows():
    body = json.dumps({"data": {"ts": list(range(101))}}).encode()
    with pytest.raises(RequestTooLarge, match="101 rows"):
        parse_predict(body, "application/json", {}, LIMITS)


@pytest.mark.parametrize(
    "body",
    [
        {
            "identifier": "A\u00e9",
            "data": {"ts": ["2024-01-01 00:00:00"], "down": [1.5]},
            "index_col": "ts",
            "inference_length": 3,
        },
        {"identifier": "NaN-site", "data": {"ts": ["2024-01-01"], "down": ["1.5"]}},  # 'NaN' inside a string is fine
        {"data": {"down": [None, 2]}, "extra": {"ignored": True}},
    ],
)
def test_bodies_the_native_parser_leaves_are_read_as_the_schema_reads_them(body):
    from flts_streams.core.schemas import PredictRequest
    from flts_streams.serving.predict_request import _from_model

    raw = json.dumps(body).encode()  # an escape, a string number, null, an unknown key: not the native subset
    assert parse_body(raw) is None
    assert parse_predict(raw, "application/json", {}, LIMITS) == _from_model(PredictRequest.model_validate(body))


def test_query_horizon_is_validated_like_the_body():
    with pytest.raises(SchemaError, match="inference_length"):
        parse_predict(b'{"identifier": "A"}', "application/json", {"inference_length": "0"}, LIMITS)


def _bodies():
    """Bodies near every edge PredictRequest has: types, lengths, bounds, nulls, extras."""
    idents = [None, "A", "", "x" * 200, "x" * 201, 5, True, ["A"], "é" * 200]
    horizons = [None, 1, 0, 10_000, 10_001, True, 5.0, 5.5, "5", [5]]
    datas = [
        None,
        {},
        {"ts": ["2024-01-01"], "down": [1.0]},
        {"ts": "2024"},
        [1, 2],
        {"a": None},
        {"a": {"b": 1}},
        {"a": [[1]]},
        "x",
    ]
    cols = [None, "ts", 3, ""]
    for i, ident in enumerate(idents):
        for j, h in enumerate(horizons):
            body = {"data": datas[(i + j) % len(datas)], "index_col": cols[(i * j) % len(cols)], "extra": i}
            body.update(
                {k: v for k, v in (("identifier", ident), ("inference_length", h)) if v is not None or (i + j) % 2}
            )
            yield body
    yield from ([], "x", 3, None, {"identifier": None, "data": None})
    yield from (
        {"identifier": "PobleSec", "data": {"ts": ["2024-01-01"] * 3, "down": [1.0, 2, None]}, "inference_length": h}
        for h in (1, 30, None)
    )


def test_the_fast_paths_field_checks_accept_only_what_the_schema_accepts_unchanged():
    """The native path checks identifier, index_col and inference_length itself; the schema must agree."""
    from pydantic import ValidationError

    from flts_streams.core.schemas import PredictRequest
    from flts_streams.serving.predict_request import _plain_fields

    accepted = 0
    for body in _bodies():
        if type(body) is not dict:
            continue
        fields = {k: body.get(k) for k in ("identifier", "index_col", "inference_length")}
        plain = _plain_fields(*fields.values())
        try:
            model = PredictRequest.model_validate(fields)
        except ValidationError:
            assert not plain, body
            continue
        assert not plain or (model.identifier, model.index_col, model.inference_length) == tuple(fields.values()), body
        accepted += plain
    assert accepted >= 8  # the usual fields do pass


def test_too_few_rows_names_the_model_window_first():
    """The old client's one-row body was told "need at least 2 rows to infer the cadence"; the minimum is the window."""
    body = b'{"data": {"time": ["2018-02-05 23:40:00"], "down": [1.0]}}'
    req = parse_predict(body, "application/json", {}, LIMITS)
    spec = SimpleNamespace(features=("down",), window=30, cadence_s=120.0)
    with pytest.raises(
        NotEnoughRows, match=r"need at least 30 rows \(the model's input window, one row every 120s\); got 1"
    ):
        request_frame(req, spec)


def test_quantiles_come_from_the_body_or_the_query_and_are_checked_like_the_schema():
    body = b'{"identifier": "A", "quantiles": [0.1, 0.9]}'
    assert parse_predict(body, "application/json", {}, LIMITS).quantiles == (0.1, 0.9)
    query = parse_predict(b'{"identifier": "A"}', "application/json", {"quantiles": "0.1, 0.9"}, LIMITS)
    assert query.quantiles == (0.1, 0.9)
    with pytest.raises(SchemaError, match="comma-separated numbers"):
        parse_predict(b"{}", "application/json", {"quantiles": "low"}, LIMITS)
    with pytest.raises(SchemaError, match="quantiles"):
        parse_predict(b'{"quantiles": "0.1"}', "application/json", {}, LIMITS)
