"""MLflow pyfunc wrapper: the same column frame as /predict in, the forecast out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from mlflow.pyfunc import PythonModel

from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import prepare_frame
from flts_streams.forecasting.spec import ModelSpec

SPEC_ARTIFACT = "spec"
WEIGHTS_ARTIFACT = "weights"


class FltsForecastModel(PythonModel):
    """Self-contained forecaster: weights + JSON spec (features, scaler, window, ...)."""

    forecaster: Forecaster

    def load_context(self, context: Any) -> None:
        """Rebuild the network from the logged artifacts."""
        spec = ModelSpec.from_json(Path(context.artifacts[SPEC_ARTIFACT]).read_text())
        state = torch.load(context.artifacts[WEIGHTS_ARTIFACT], map_location="cpu", weights_only=True)
        self.forecaster = Forecaster.from_state(spec, state)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Forecast from a column frame (ts/time column + features); params: inference_length, index_col."""
        params = params or {}
        frame = prepare_frame(model_input, required=self.forecaster.spec.features, index_col=params.get("index_col"))
        forecast = self.forecaster.forecast(frame, params.get("inference_length"))
        return pd.DataFrame(forecast.records())
