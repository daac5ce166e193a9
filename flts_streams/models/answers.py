"""The JSON answer of a forecast, the same for HTTP (/predict) and claims (inference-results)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from flts_streams.models.serving_rule import model_reason

if TYPE_CHECKING:
    from flts_streams.models.predictor import Prediction


def prediction_body(identifier: str, prediction: Prediction, *, cached: bool) -> dict[str, Any]:
    """Response JSON of a successful forecast (values in original units)."""
    return {**_prediction_head(identifier, prediction, cached=cached), "predictions": prediction.forecast.records("ts")}


def prediction_json(identifier: str, prediction: Prediction, *, cached: bool) -> bytes:
    """``orjson.dumps(prediction_body(...))``, with the predictions spliced in as bytes (the /predict hot path)."""
    head = orjson.dumps(_prediction_head(identifier, prediction, cached=cached))
    return head[:-1] + b',"predictions":' + prediction.forecast.records_json("ts") + b"}"


def _prediction_head(identifier: str, prediction: Prediction, *, cached: bool) -> dict[str, Any]:
    """Every field of a successful forecast's response but the predictions."""
    spec = prediction.model.forecaster.spec
    fallback = prediction.model_identifier != identifier
    return {
        "status": "SUCCESS",
        "identifier": identifier,
        "run_id": prediction.model.run_id,
        "model_uri": prediction.model.uri,
        "model_identifier": prediction.model_identifier,
        "fallback_model": fallback,
        "synthetic_model": spec.synthetic_data,
        "model_reason": model_reason(identifier, fallback, spec.synthetic_data),
        "cached": cached,
        "freq": f"{spec.cadence_s:g}s",  # forecasts are stamped on the model's cadence
    }
