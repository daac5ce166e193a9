"""OpenAPI 3 document of every HTTP route (built from the pydantic schemas)."""
from __future__ import annotations

from typing import Any

from flts_streams.records import PredictRequest

def _error_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}


def _prediction_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status", "identifier", "run_id", "model_uri", "cached", "freq", "predictions"],
        "properties": {
            "status": {"type": "string", "enum": ["SUCCESS"]},
            "identifier": {"type": "string"},
            "run_id": {"type": "string"},
            "model_uri": {"type": "string"},
            "model_identifier": {"type": "string"},
            "fallback_model": {"type": "boolean"},
            "cached": {"type": "boolean"},
            "freq": {"type": "string"},
            "predictions": {"type": "array", "items": {
                "type": "object", "properties": {"ts": {"type": "string", "format": "date-time"}},
                "additionalProperties": {"type": "number"}}},
        },
    }


_ERRORS = (("400", "invalid data"), ("404", "unknown identifier"), ("413", "body too large"), ("415", "not JSON"),
           ("422", "wrong field types"), ("429", "overloaded (see Retry-After)"), ("503", "no model / not ready"),
           ("504", "deadline exceeded"))

def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    described = dict(_ERRORS)
    return {c: _json({"$ref": "#/components/schemas/Error"}, described[c]) for c in codes}


def _simple(summary: str, schema: dict[str, Any] | None = None, *codes: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": _json(schema or {"type": "object"}, "OK"), **_errors(*codes)}}}


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document."""
    horizon = {"name": "inference_length", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}
    ident = {"name": "identifier", "in": "path", "required": True, "schema": {"type": "string"}}
    pred = _json({"$ref": "#/components/schemas/Prediction"}, "forecast in original units")
    return {
        "openapi": "3.0.3",
        "info": {"title": "flts-streams", "version": version, "description": "Streaming time-series forecasting service"},
        "paths": {
            "/predict": {"post": {
                "summary": "Forecast from posted data, or from the cached frame when data is omitted",
                "parameters": [horizon],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
                "responses": {"200": pred, **_errors("400", "404", "413", "415", "422", "429", "503", "504")},
            }},
            "/predict/{identifier}": {"get": {
                "summary": "Forecast from the identifier's cached frame (routed to its owner)",
                "parameters": [ident, horizon],
                "responses": {"200": pred, **_errors("400", "404", "429", "503", "504")},
            }},
            "/frames/{identifier}": {"get": {"summary": "Summary of the cached frame", "parameters": [ident],
                                             "responses": {"200": _json({"type": "object"}, "OK"), **_errors("404")}}},
            "/healthz": _simple("Liveness"),
            "/readyz": _simple("Readiness: recovery done, a model loaded, broker reachable", None, "503"),
            "/predict_ping": _simple("Compatibility probe"),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": _simple("This document"),
            "/docs": {"get": {"summary": "Human-readable API page", "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
            "/admin/reload": {"post": {"summary": "Reload champion models (bearer token)", "responses": {
                "200": _json({"type": "object"}, "reloaded"), "401": _json({"$ref": "#/components/schemas/Error"}, "no or wrong token"),
                **_errors("503")}}},
        },
        "components": {"schemas": {"PredictRequest": PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}"), "Prediction": _prediction_schema(), "Error": _error_schema()}},
    }


def docs_html(doc: dict[str, Any]) -> str:
    """A small self-contained HTML page listing the routes."""
    rows = "".join(
        f"<tr><td><code>{method.upper()}</code></td><td><code>{path}</code></td><td>{op.get('summary', '')}</td></tr>"
        for path, ops in doc["paths"].items() for method, op in ops.items()
    )
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>flts-streams API</title></head><body>"
            f"<h1>flts-streams API {doc['info']['version']}</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"
            f"<table border='1' cellpadding='4'><tr><th>method</th><th>path</th><th>what</th></tr>{rows}</table></body></html>")
