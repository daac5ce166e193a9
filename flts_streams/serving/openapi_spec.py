"""OpenAPI 3 document of every HTTP route (built from the pydantic schemas), its example body, and the /docs page."""

from __future__ import annotations

import html
import json
from typing import Any

from flts_streams.core.schemas import HORIZON_MAX, IDENTIFIER_MAX, PredictRequest
from flts_streams.core.settings import ServingSettings
from flts_streams.forecasting.spec import FEATURES

EXAMPLE_ROWS = 30  # the window of the models this project trains
SWAGGER_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png")


def example_body() -> dict[str, Any]:
    """The shipped example request (examples/predict.json): 30 rows of synthetic data in the real 11-column format."""
    from flts_streams.forecasting.demo import demo_frame

    frame = demo_frame(days=1, seed=7, gaps=0, blanks=0).tail(EXAMPLE_ROWS)
    data: dict[str, list[Any]] = {"time": frame["time"].astype(str).tolist()}
    for column in FEATURES:
        data[column] = [_short(v) for v in frame[column].tolist()]
    return {"identifier": "example-cell", "index_col": "time", "inference_length": 5, "data": data}


def example_answer() -> dict[str, Any]:
    """What `flts dev` answers to examples/predict.json (run id shortened), shown on the API page."""
    return {
        "status": "SUCCESS",
        "identifier": "example-cell",
        "run_id": "b59bdca5...",
        "model_uri": "models:/flts-demo@champion",
        "model_identifier": "*",
        "model_source": "default",
        "fallback_model": True,
        "synthetic_model": True,
        "model_reason": "no model is trained for 'example-cell': the demo model answered; "
        "it was trained on synthetic data, "
        "so this forecast says nothing about your data. Train one: flts train --identifier example-cell --data FILE",
        "cached": False,
        "freq": "120s",
        "predictions": [
            {"ts": "2024-01-02T00:00:00", "down": 215399534.6},
            {"ts": "2024-01-02T00:02:00", "down": 215930236.5},
        ],
    }


def _short(value: float) -> float | int:
    """Six significant digits (a readable example; the values stay realistic)."""
    rounded = float(f"{value:.6g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 1e6 else rounded


def example_json(body: dict[str, Any]) -> str:
    """The example body as the file holds it: one line per column."""
    head = {k: v for k, v in body.items() if k != "data"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    columns = ",\n".join(
        f"    {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in body["data"].items()
    )
    return "{\n" + "\n".join(lines) + '\n  "data": {\n' + columns + "\n  }\n}\n"


def _predict_description(limits: ServingSettings) -> str:
    return (
        "Forecast from the rows in `data`, or, when `data` is absent or empty, from the rows cached for `identifier` "
        "by earlier claims (routed to the worker that owns it).\n\n"
        "**Rules for `data`** (column-oriented: one list per column, all the same length):\n"
        "* a timestamp column: `index_col`, else the first of `ts`, `time`, `timestamp`, `date`;\n"
        f"* every feature column of the model; the models this project trains use `{'`, `'.join(FEATURES)}`;\n"
        "* at least the model's window of rows (30 for the models this project trains), at most "
        f"{limits.max_rows} rows and {limits.max_body_bytes} bytes of body;\n"
        "* one row per cadence step of the model (120 s for the Barcelona LTE data): no gaps, duplicates or "
        "unparseable timestamps; finite numbers only (no NaN, no Infinity).\n\n"
        "Forecasts start one step after the last row, in original units. `inference_length` (body or query) is the "
        "number of steps, at most the model's horizon. Every answer names the model that answered and why "
        "(`model_reason`); `synthetic_model: true` means the demo model, trained on synthetic data, answered.\n\n"
        "**History.** The models this project trains also read up to 7 days of the first target before the "
        "window (a time-of-day profile, the day before, rolling means): send up to that many rows "
        f"({limits.max_rows} at most) for the best forecast; 30 rows get the best forecast the window allows. "
        "Cached forecasts use the history the service keeps from the identifier's claims.\n\n"
        "**Quantiles.** `quantiles` (body list, or query `?quantiles=0.1,0.9`) asks for quantile forecasts "
        "besides the point forecast: a subset of the levels the model was trained for (0.1, 0.5, 0.9 by default; "
        "others are a 400 naming them). They come in `quantiles`, one list per level in the shape of "
        "`predictions`, which keeps its meaning (the point forecast)."
    )


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
            "model_identifier": {
                "type": "string",
                "description": 'whose model answered: the identifier, "@global" (the global model) '
                'or "*" (the default)',
            },
            "model_source": {
                "type": "string",
                "enum": ["own", "global", "default"],
                "description": "the serving order's rung that answered: the identifier's own champion, else the "
                "global champion, else the default (the demo model under `flts dev`)",
            },
            "fallback_model": {"type": "boolean", "description": "true when the identifier has no model of its own"},
            "synthetic_model": {"type": "boolean", "description": "true when the model was trained on synthetic data"},
            "model_reason": {"type": "string", "description": "why this model answered, in words"},
            "cached": {"type": "boolean"},
            "freq": {"type": "string"},
            "predictions": _steps("the point forecast, one object per step"),
            "quantiles": {
                "type": "object",
                "description": 'only when asked for: level ("0.1") -> that quantile\'s forecast, per step',
                "additionalProperties": _steps("one object per step"),
            },
        },
    }


def _steps(description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "description": description,
        "items": {
            "type": "object",
            "properties": {"ts": {"type": "string", "format": "date-time"}},
            "additionalProperties": {"type": "number"},
        },
    }


_ERRORS = (
    ("400", "invalid data or malformed JSON"),
    ("404", "unknown identifier: nothing cached, or no model"),
    ("413", "body too large"),
    ("415", "not JSON"),
    ("422", "wrong field types"),
    ("429", "overloaded (see Retry-After)"),
    ("503", "not ready: models loading, a dependency down"),
    ("504", "deadline exceeded"),
)


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    described = dict(_ERRORS)
    return {c: _json({"$ref": "#/components/schemas/Error"}, described[c]) for c in codes}


def _simple(summary: str, schema: dict[str, Any] | None = None, *codes: str) -> dict[str, Any]:
    return {
        "get": {"summary": summary, "responses": {"200": _json(schema or {"type": "object"}, "OK"), **_errors(*codes)}}
    }


def openapi_document(version: str, limits: ServingSettings | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0 document (limits: the serving settings it states)."""
    limits = limits or ServingSettings()
    horizon = {
        "name": "inference_length",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": HORIZON_MAX},
    }
    ident = {"name": "identifier", "in": "path", "required": True, "schema": {"type": "string"}}
    quantiles = {
        "name": "quantiles",
        "in": "query",
        "required": False,
        "description": "comma-separated quantile levels, e.g. 0.1,0.9 (a subset of the model's trained levels)",
        "schema": {"type": "string"},
    }
    pred = _json({"$ref": "#/components/schemas/Prediction"}, "forecast in original units")
    pred["content"]["application/json"]["example"] = example_answer()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "flts-streams",
            "version": version,
            "description": "Streaming time-series forecasting service",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Forecast from posted data, or from the cached frame when data is omitted",
                    "description": _predict_description(limits),
                    "parameters": [horizon, quantiles],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PredictRequest"},
                                "example": example_body(),
                            }
                        },
                    },
                    "responses": {"200": pred, **_errors("400", "404", "413", "415", "422", "429", "503", "504")},
                }
            },
            "/predict/{identifier}": {
                "get": {
                    "summary": "Forecast from the identifier's cached frame (routed to its owner)",
                    "parameters": [ident, horizon, quantiles],
                    "responses": {"200": pred, **_errors("400", "404", "429", "503", "504")},
                }
            },
            "/frames/{identifier}": {
                "get": {
                    "summary": "Summary of the cached frame",
                    "parameters": [ident],
                    "responses": {"200": _json({"type": "object"}, "OK"), **_errors("404")},
                }
            },
            "/accuracy/{identifier}": {
                "get": {
                    "summary": "Live accuracy of the identifier's claim forecasts (routed to its owner)",
                    "description": (
                        "Forecasts issued for claims, scored against the actuals later claims of the identifier "
                        "bring: per model run (`run_id`) and horizon bucket (steps ahead `1-10`, `11-20`, `21-30`, "
                        "`31+`), over the last hour (`1h`) and day (`24h`) of actuals: `steps` scored, `mae` and "
                        "`persistence_mae` per target (persistence: the last actual at issue time), `skill` = "
                        "1 - mae / persistence_mae of the first target (above 0: better than persistence), "
                        "`coverage` = share of actuals inside the widest trained quantile interval (null: no "
                        "quantiles). `forecasts` lists the forecasts kept and how many of their steps are scored."
                    ),
                    "parameters": [ident],
                    "responses": {"200": _json({"type": "object"}, "OK"), **_errors("404")},
                }
            },
            "/accuracy": _simple(
                "Live accuracy summary of the identifiers this worker owns: the lowest skill over the last day, "
                "and figures per model run"
            ),
            "/healthz": _simple("Liveness"),
            "/readyz": _simple("Readiness: recovery done, a model loaded, broker reachable", None, "503"),
            "/predict_ping": _simple("Compatibility probe"),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": _simple("This document"),
            "/docs": {
                "get": {
                    "summary": "Human-readable API page",
                    "responses": {
                        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/admin/reload": {
                "post": {
                    "summary": "Reload champion models (bearer token)",
                    "responses": {
                        "200": _json({"type": "object"}, "reloaded"),
                        "401": _json({"$ref": "#/components/schemas/Error"}, "no or wrong token"),
                        **_errors("503"),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "PredictRequest": _request_schema(),
                "Prediction": _prediction_schema(),
                "Error": _error_schema(),
            }
        },
    }


def _request_schema() -> dict[str, Any]:
    """PredictRequest's JSON schema with what each field means."""
    schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    notes = {
        "identifier": f"cell site (1-{IDENTIFIER_MAX} characters); default: the configured default identifier",
        "data": "columns of rows: a timestamp column and the model's features (see the operation's rules)",
        "index_col": "name of the timestamp column (default: the first of ts, time, timestamp, date)",
        "inference_length": "steps to forecast (default and maximum: the model's horizon)",
        "quantiles": "quantile levels to forecast besides the point forecast (a subset of the model's trained ones)",
    }
    for name, note in notes.items():
        schema["properties"][name]["description"] = note
    return schema


def docs_html(title: str, assets: str = "/docs/static") -> str:
    """The API page: Swagger UI from assets this server ships (no CDN), reading /openapi.json."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css"><link rel="icon" href="{assets}/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-ui-standalone-preset.js"></script>
<script>
window.onload = () => {{
  window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "BaseLayout",
    defaultModelsExpandDepth: 1, tryItOutEnabled: true}});
}};
</script></body></html>
"""
