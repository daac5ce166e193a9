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


def test_quantiles_are_answered_per_level_in_the_shape_of_predictions():
    from types import SimpleNamespace

    import numpy as np
    import orjson

    from flts_streams.forecasting.forecast import Forecast
    from flts_streams.models.answers import prediction_body, prediction_json
    from flts_streams.models.predictor import Prediction

    stamps = (np.datetime64("2024-01-01T00:02:00") + np.arange(2) * np.timedelta64(120, "s")).astype("datetime64[ns]")
    q = np.array([[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]]])  # (h, targets, levels)
    forecast = Forecast(stamps, ("down",), np.array([[2.0], [5.0]]), quantile_levels=(0.1, 0.5, 0.9), quantiles=q)
    model = SimpleNamespace(
        run_id="r",
        uri="runs:/r/model",
        forecaster=SimpleNamespace(spec=SimpleNamespace(cadence_s=120.0, synthetic_data=False)),
    )
    asked = Prediction(forecast, model, "A", quantile_index=(2, 0))
    body = prediction_body("A", asked, cached=False)
    assert list(body["quantiles"]) == ["0.9", "0.1"]
    assert body["quantiles"]["0.1"] == [
        {"ts": "2024-01-01T00:02:00", "down": 1.0},
        {"ts": "2024-01-01T00:04:00", "down": 4.0},
    ]
    assert body["predictions"][0] == {"ts": "2024-01-01T00:02:00", "down": 2.0}  # old clients read this unchanged
    assert prediction_json("A", asked, cached=False) == orjson.dumps(body)
    assert "quantiles" not in prediction_body("A", Prediction(forecast, model, "A"), cached=False)
