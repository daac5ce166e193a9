"""GET /predict_ping: compatibility probe of the original service."""

from faust.web import Request, Response, View

from flts_streams.app import app
from flts_streams.models.serving_rule import DEFAULT_KEY, GLOBAL_KEY
from tables.latest_frames import latest_frames


@app.page("/predict_ping")
class PredictPing(View):
    """model_loaded, has_df, input_seq_len, output_seq_len for the default identifier."""

    async def get(self, request: Request) -> Response:
        identifier = request.query.get("identifier", app.settings.serving.default_identifier)
        models = app.models.models()  # in memory only: a probe does not load a model
        model = next((models[k] for k in (identifier, GLOBAL_KEY, DEFAULT_KEY) if k in models), None)
        spec = model.forecaster.spec if model else None
        return self.json(
            {
                "status": "ok",
                "identifier": identifier,
                "model_loaded": model is not None,
                "has_df": latest_frames.get(identifier) is not None,
                "input_seq_len": spec.window if spec else None,
                "output_seq_len": spec.horizon if spec else None,
                "model_uri": model.uri if model else None,
            }
        )
