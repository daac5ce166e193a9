"""The JSON answer of a forecast, the same for HTTP (/predict) and claims (inference-results)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from flts_streams.models.serving_rule import model_reason, model_source

if TYPE_CHECKING:
    from flts_streams.models.predictor import Prediction


def prediction_body(identifier: str, prediction: Prediction, *, cached: bool) -> dict[str, Any]:
    """Response JSON of a successful forecast (values in original units)."""
    body = {**_prediction_head(identifier, prediction, cached=cached), "predictions": prediction.forecast.records("ts")}
    if prediction.quantile_index:
        forecast = prediction.forecast
        body["quantiles"] = {
            quantile_key(forecast.quantile_levels[i]): forecast.quantile_forecast(i).records("ts")
            for i in prediction.quantile_index
        }
    return body


def prediction_json(identifier: str, prediction: Prediction, *, cached: bool) -> bytes:
    """``orjson.dumps(prediction_body(...))``, with the forecasts spliced in as bytes (the /predict hot path)."""
    head = orjson.dumps(_prediction_head(identifier, prediction, cached=cached))
    forecast = prediction.forecast
    point, *quantiles = forecast.records_json_with("ts", prediction.quantile_index)
    parts = [head[:-1], b',"predictions":', point]
    if quantiles:
        for n, (i, records) in enumerate(zip(prediction.quantile_index, quantiles)):
            key = orjson.dumps(quantile_key(forecast.quantile_levels[i]))
            parts += [b',"quantiles":{' if n == 0 else b",", key, b":", records]
        parts.append(b"}")
    return b"".join(parts) + b"}"


def quantile_key(level: float) -> str:
    """The answer's key of a quantile level: ``0.1`` -> ``"0.1"``."""
    return f"{level:g}"


def _prediction_head(identifier: str, prediction: Prediction, *, cached: bool) -> dict[str, Any]:
    """Every field of a successful forecast's response but the predictions."""
    spec = prediction.model.forecaster.spec
    source = model_source(identifier, prediction.model_identifier)
    return {
        "status": "SUCCESS",
        "identifier": identifier,
        "run_id": prediction.model.run_id,
        "model_uri": prediction.model.uri,
        "model_identifier": prediction.model_identifier,
        "model_source": source,  # the serving order's rung: "own", "global" or "default"
        "fallback_model": source != "own",
        "synthetic_model": spec.synthetic_data,
        "model_reason": model_reason(identifier, source, spec.synthetic_data),
        "cached": cached,
        "freq": f"{spec.cadence_s:g}s",  # forecasts are stamped on the model's cadence
    }
