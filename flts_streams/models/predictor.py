"""Inference core: resolve the identifier's model, build its input, forecast through the micro-batcher off the loop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from mode import Service

from flts_streams.core.metrics import Metrics
from flts_streams.core.settings import Settings
from flts_streams.forecasting.forecast import Forecast
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.forecasting.spec import ModelSpec
from flts_streams.models.micro_batching import MicroBatcher
from flts_streams.models.registry import ModelRegistry
from flts_streams.models.serving_rule import model_source

log = logging.getLogger(__name__)
FALLBACK_LOG_LIMIT = 1000  # identifiers whose first fallback is logged; beyond, the metric alone counts them
FrameSource = Callable[[ModelSpec], PreparedFrame]  # the model's spec (features, window) -> frame
Quantiles = Sequence[float] | Literal["all"] | None  # levels to answer: those asked for, every trained one, none
# The model's spec -> the identifier's recent values of its first target (None: take them from the frame).
HistorySource = Callable[[ModelSpec], np.ndarray | None]


@dataclass(frozen=True)
class Prediction:
    """A forecast with the model that made it."""

    forecast: Forecast
    model: LoadedModel
    model_identifier: str  # whose model answered ("*" for the default)
    quantile_index: tuple[int, ...] = ()  # positions in forecast.quantile_levels the answer includes


class Predictor(Service):
    """All inference goes through here: models from the registry, forwards on one torch thread, micro-batched."""

    def __init__(self, settings: Settings, metrics: Metrics, registry: ModelRegistry, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self.registry = registry
        self._fallbacks_logged: set[str] = set()
        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flts-torch")
        self._batcher = MicroBatcher(
            self._torch, metrics, settings.serving.max_batch_size, settings.serving.max_batch_wait_ms / 1000.0
        )

    async def on_start(self) -> None:
        """Bound torch threads."""
        torch.set_num_threads(self.settings.serving.torch_threads)

    async def on_stop(self) -> None:
        """Let running forwards finish, then drop the pool."""
        self._torch.shutdown(wait=True, cancel_futures=True)

    async def predict(
        self,
        identifier: str,
        frame_for: FrameSource,
        horizon: int | None,
        source: str = "http",
        timeout: float | None = None,
        *,
        quantiles: Quantiles = None,
        history: HistorySource | None = None,
    ) -> Prediction:
        """Forecast with the identifier's model; ``frame_for`` builds the frame for that model's spec.

        ``history``: the identifier's recent values of the first target, kept by the service (cached
        forecasts); otherwise a model that reads history takes it from the frame. Raises TimeoutError
        when the forecast is not back within ``timeout`` seconds.
        """
        model, owner = await self.registry.resolve(identifier)  # once: a swap mid-request cannot mix models
        forecaster = model.forecaster
        if owner != identifier:
            self._count_fallback(identifier, model, owner)
        h = forecaster.check_horizon(horizon)
        wanted = (
            tuple(range(len(forecaster.spec.quantiles)))
            if quantiles == "all"
            else forecaster.check_quantiles(quantiles)
        )
        spec = forecaster.spec
        series = history(spec) if history is not None and spec.history_days else None
        item = forecaster.make_input(frame_for(spec), series)
        values: np.ndarray = await self._batcher.submit(model, item, source, timeout)
        return Prediction(forecaster.forecast_of(item, values, h), model, owner, wanted)

    def _count_fallback(self, identifier: str, model: LoadedModel, owner: str) -> None:
        """Count a forecast by a model not trained for ``identifier``; log the first one per identifier."""
        synthetic = model.forecaster.spec.synthetic_data
        source = model_source(identifier, owner)
        kind = "synthetic_demo" if synthetic and source == "default" else source
        self.metrics.fallback_children[kind].inc()
        if identifier not in self._fallbacks_logged and len(self._fallbacks_logged) < FALLBACK_LOG_LIMIT:
            self._fallbacks_logged.add(identifier)
            log.info(
                "fallback model answers identifier=%s model_uri=%s synthetic_data=%s reason=%s",
                identifier,
                model.uri,
                synthetic,
                "no model trained for the identifier",
            )
