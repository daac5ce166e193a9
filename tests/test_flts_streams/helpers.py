"""Helpers shared by the unit tests of flts_streams."""

from __future__ import annotations

import inspect

from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.forecast import Forecaster
from flts_streams.forecasting.frame import prepare_frame
from flts_streams.forecasting.model import build_net
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.forecasting.scaler import Scaler
from flts_streams.forecasting.spec import FEATURES, ModelSpec


def model(seed: int = 0, **spec_fields: object) -> LoadedModel:
    """A small untrained forecaster on the demo features (fast to build; its forecasts are valid numbers).

    ``spec_fields``: other ModelSpec fields, e.g. history_days or quantiles, or time_features instead of the default.
    """
    frame = prepare_frame(demo_frame(days=1, seed=3), required=FEATURES, impute=True)
    fields: dict[str, object] = {
        "kind": "lstm",
        "features": FEATURES,
        "targets": ("down",),
        "window": 30,
        "horizon": 30,
        "cadence_s": 120.0,
        "scaler": Scaler.fit(FEATURES, frame.select(FEATURES)),
        "time_features": ("minute_of_day",),
    }
    spec = ModelSpec(**(fields | spec_fields))  # type: ignore[arg-type]
    return LoadedModel(Forecaster(spec, build_net(spec, seed)), f"test:/model-{seed}", f"run-{seed}")


def source_statements(function: object) -> list[str]:
    """The statements of ``function``'s body, stripped: no signature, docstring, comments or blank lines.

    For tests that pin an override against the upstream method it replays.
    """
    lines = [line.strip() for line in inspect.getsource(function).splitlines()[1:]]  # type: ignore[arg-type]
    body = [line for line in lines if line and not line.startswith("#")]
    return body[1:] if body and body[0].startswith('"""') else body
