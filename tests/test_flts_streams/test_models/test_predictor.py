"""Predictor: forecasts by the serving order, counted by the rung that answered."""

from __future__ import annotations

import dataclasses

import pytest

from flts_streams.core.metrics import Metrics
from flts_streams.core.settings import Settings
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.frame import prepare_frame
from flts_streams.models.predictor import Predictor
from flts_streams.models.registry import ModelRegistry
from flts_streams.models.serving_rule import DEFAULT_KEY, GLOBAL_KEY
from tests.test_flts_streams.helpers import model


@pytest.fixture
async def predictor(tmp_path):
    settings = Settings(paths={"var_dir": tmp_path / "var"})
    metrics = Metrics()
    p = Predictor(settings, metrics, ModelRegistry(settings, metrics))
    await p.start()
    yield p
    await p.stop()


def _counts(predictor: Predictor) -> dict[str, float]:
    return {k: c._value.get() for k, c in predictor.metrics.fallback_children.items()}


async def _predict(predictor: Predictor, identifier: str) -> str:
    frame = prepare_frame(demo_frame(days=1, seed=1), impute=True)
    return (await predictor.predict(identifier, lambda _spec: frame, None)).model_identifier


async def test_fallbacks_are_counted_by_the_rung_that_answered(predictor):
    synthetic = model()
    synthetic.forecaster.spec = dataclasses.replace(synthetic.forecaster.spec, synthetic_data=True)
    predictor.registry.install(DEFAULT_KEY, synthetic)
    assert await _predict(predictor, "A") == DEFAULT_KEY
    assert _counts(predictor) == {"global": 0, "default": 0, "synthetic_demo": 1}
    predictor.registry.install(DEFAULT_KEY, model(seed=1))
    assert await _predict(predictor, "A") == DEFAULT_KEY
    predictor.registry.install(GLOBAL_KEY, model(seed=2))
    assert await _predict(predictor, "A") == GLOBAL_KEY
    assert await _predict(predictor, "B") == GLOBAL_KEY
    predictor.registry.install("A", model(seed=3))
    assert await _predict(predictor, "A") == "A"  # its own model: no fallback
    assert _counts(predictor) == {"global": 2, "default": 1, "synthetic_demo": 1}
