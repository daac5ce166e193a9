"""The answer of a forecast: the hot path's bytes are exactly the dump of the answer body."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("identifier,model_identifier,cached", [("site-1", "site-1", False), ('sité "2"', "*", True)])
def test_the_hot_path_response_bytes_are_the_dump_of_the_response_body(identifier, model_identifier, cached):
    from types import SimpleNamespace

    import numpy as np
    import orjson

    from flts_streams.forecasting.forecast import Forecast
    from flts_streams.models.answers import prediction_body, prediction_json
    from flts_streams.models.predictor import Prediction

    stamps = (np.datetime64("2024-01-01T00:02:00") + np.arange(3) * np.timedelta64(120, "s")).astype("datetime64[ns]")
    forecast = Forecast(stamps, ("down", "up"), np.array([[1.5, np.nan], [2e8, -0.0], [3.0, 4.25]]))
    model = SimpleNamespace(
        run_id="r1",
        uri="runs:/r1/model",
        forecaster=SimpleNamespace(spec=SimpleNamespace(cadence_s=120.0, synthetic_data=cached)),
    )
    prediction = Prediction(forecast, model, model_identifier)
    dumped = prediction_json(identifier, prediction, cached=cached)
    assert dumped == orjson.dumps(prediction_body(identifier, prediction, cached=cached))
    assert json.loads(dumped)["predictions"][1] == {"ts": "2024-01-01T00:04:00", "down": 2e8, "up": -0.0}
