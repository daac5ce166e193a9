"""Predictor service: owns the loaded models, swaps them atomically, batches forecasts."""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mode import Service

from flts_streams.batching import MicroBatcher
from flts_streams.errors import ModelLoadError, ModelsNotReady, NoModel, Overloaded, RegistryUnavailable
from flts_streams.forecasting import packaging
from flts_streams.forecasting.forecast import Forecast
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.forecasting.spec import ModelSpec
from flts_streams.metrics import Metrics
from flts_streams.serving_rule import DEFAULT_KEY
from flts_streams.settings import Settings

log = logging.getLogger(__name__)
FALLBACK_LOG_LIMIT = 1000  # identifiers whose first fallback is logged; beyond, the metric alone counts them
FrameSource = Callable[[ModelSpec], PreparedFrame]  # the model's spec (features, window) -> frame


@dataclass(frozen=True)
class Prediction:
    """A forecast with the model that made it."""

    forecast: Forecast
    model: LoadedModel
    model_identifier: str  # whose model answered ("*" for the default)


class Predictor(Service):
    """Holds one model per identifier plus a default; all inference goes through here."""

    def __init__(self, settings: Settings, metrics: Metrics, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self._models: dict[str, LoadedModel] = {}
        self._in_flight = 0
        # Read when /metrics is scraped, not written per request (two locked gauge updates a prediction).
        metrics.http_in_flight.set_function(lambda: self._in_flight)
        self._failed: set[tuple[str, str]] = set()
        self._versions: dict[str, str] = {}  # identifier -> registry version last loaded
        self.initial_load_done = asyncio.Event()
        self._fallbacks_logged: set[str] = set()
        self._registry_ok = True  # False while the last registry contact failed: missing models may yet come
        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flts-torch")
        self._batcher = MicroBatcher(
            self._torch, metrics, settings.serving.max_batch_size, settings.serving.max_batch_wait_ms / 1000.0
        )

    async def on_start(self) -> None:
        """Bound torch threads and point MLflow at the tracking store."""
        torch.set_num_threads(self.settings.serving.torch_threads)
        packaging.configure(self.settings.mlflow_tracking_uri)

    async def on_stop(self) -> None:
        """Let running forwards finish, then drop the pool."""
        self._torch.shutdown(wait=True, cancel_futures=True)

    @Service.task
    async def _initial_load(self) -> None:
        try:
            await self.load_champions()
        finally:
            freeze_startup_heap()
            self.initial_load_done.set()

    @property
    def settled(self) -> bool:
        """True once the initial load is done and the registry answered last time: a missing model stays missing."""
        return self.initial_load_done.is_set() and self._registry_ok

    @property
    def has_model(self) -> bool:
        """True once any model (or the default) is loaded."""
        return bool(self._models)

    def models(self) -> dict[str, LoadedModel]:
        """Snapshot of loaded models by identifier."""
        return dict(self._models)

    async def load_champions(self, reload_default: bool = True) -> int:
        """Load every identifier's champion and the configured default; returns how many loaded."""
        loaded = await self.follow_registry()
        if self.settings.model.default_uri and (reload_default or DEFAULT_KEY not in self._models):
            loaded += await self._try_load(DEFAULT_KEY, self.settings.model.default_uri)
        return loaded

    async def _try_load(self, identifier: str, uri: str) -> bool:
        """Load unless this URI is known broken; a failure is logged, never raised (a broken one is remembered)."""
        if (identifier, uri) in self._failed:
            return False
        try:
            await self.load(identifier, uri)
        except RegistryUnavailable:
            self._registry_ok = False  # retried by the follow timer; claims wait rather than dead-letter
            log.warning("model load deferred: registry unavailable identifier=%s uri=%s", identifier, uri, exc_info=True)
            return False
        except ModelLoadError:
            self._failed.add((identifier, uri))  # do not retry a broken model every tick
            log.exception("model load failed identifier=%s uri=%s", identifier, uri)
            return False
        return True

    async def follow_registry(self) -> int:
        """Load each registered champion whose aliased version changed since we last loaded it."""
        champions = await asyncio.to_thread(self._registry_champions)
        self._registry_ok = champions is not None
        swapped = 0
        for identifier, (version, uri) in (champions or {}).items():
            if self._versions.get(identifier) != version and await self._try_load(identifier, uri):
                self._versions[identifier] = version
                swapped += 1
        return swapped

    def _registry_champions(self) -> dict[str, tuple[str, str]] | None:
        """identifier -> (version, versioned model URI) of every registered model carrying the champion alias.

        None when the registry could not be listed.
        """
        prefix, alias = self.settings.model.registry_prefix, self.settings.model.champion_alias
        client, found, token = MlflowClient(), {}, None
        try:
            while True:
                page = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", page_token=token)
                for m in page:
                    version = (m.aliases or {}).get(alias)
                    if version is not None:
                        found[m.name[len(prefix):]] = (str(version), f"models:/{m.name}/{version}")
                token = page.token
                if not token:
                    return found
        except MlflowException:
            log.exception("cannot list registered models tracking_uri=%s", self.settings.mlflow_tracking_uri)
            return None

    async def load(self, identifier: str, uri: str) -> LoadedModel:
        """Load a model off the event loop and swap it in atomically for ``identifier``."""
        started = time.perf_counter()
        model = await asyncio.to_thread(packaging.load, uri)
        self.metrics.model_load.observe(time.perf_counter() - started)
        self.install(identifier, model)
        return model

    def install(self, identifier: str, model: LoadedModel) -> None:
        """Serve ``model`` for ``identifier`` from now on (atomic swap)."""
        previous = self._models.get(identifier)
        self._models[identifier] = model  # one assignment: requests see the old or the new model
        if previous is not None:
            self.metrics.model_info.remove(identifier, previous.run_id, previous.uri)
        self.metrics.model_info.labels(identifier, model.run_id, model.uri).set(1)
        self.metrics.models_loaded.set(len(self._models))
        log.info("model installed identifier=%s uri=%s run_id=%s", identifier, model.uri, model.run_id)

    def own_model(self, identifier: str) -> LoadedModel | None:
        """The model loaded for exactly this identifier (no default fallback)."""
        return self._models.get(identifier)

    async def follow(self, champions: dict[str, tuple[str, str]]) -> int:
        """Load every champion (identifier -> (uri, run_id)) whose run differs from the loaded one."""
        swapped = 0
        for identifier, (uri, run_id) in champions.items():
            current = self._models.get(identifier)
            if (current is None or current.run_id != run_id) and await self._try_load(identifier, uri):
                swapped += 1
        return swapped

    def resolve(self, identifier: str) -> tuple[LoadedModel, str]:
        """The identifier's model, else the default, else ModelsNotReady (may change) or NoModel (will not)."""
        model = self._models.get(identifier)
        if model is not None:
            return model, identifier
        default = self._models.get(DEFAULT_KEY)
        if default is not None:
            return default, DEFAULT_KEY
        if not self.settled:
            why = "the model registry is unreachable" if self.initial_load_done.is_set() else "models are still loading"
            raise ModelsNotReady(f"no model for identifier {identifier!r} yet: {why}; retry shortly")
        raise NoModel(
            f"no model for identifier {identifier!r} and no default model; train one with "
            f"`flts train --identifier {identifier}` or set FLTS_MODEL__DEFAULT_URI"
        )

    def at_capacity(self) -> bool:
        """True while max_in_flight predictions are running."""
        return self._in_flight >= self.settings.serving.max_in_flight

    def overloaded(self) -> Overloaded:
        """Count one rejection for capacity; the error to answer it with."""
        self.metrics.rejected_overloaded.inc()
        return Overloaded(f"more than {self.settings.serving.max_in_flight} predictions in flight; retry shortly")

    def admit(self) -> _Slot:
        """Bound predictions in flight; beyond the limit raise Overloaded at once (use with ``with``)."""
        if self.at_capacity():
            raise self.overloaded()
        return _Slot(self)

    async def predict(self, identifier: str, frame_for: FrameSource, horizon: int | None, source: str = "http",
                      timeout: float | None = None) -> Prediction:
        """Forecast with the identifier's model; ``frame_for`` builds the frame for that model's spec.

        Raises TimeoutError when the forecast is not back within ``timeout`` seconds.
        """
        model, owner = self.resolve(identifier)  # resolved once: a swap mid-request cannot mix models
        forecaster = model.forecaster
        if owner != identifier:
            self._count_fallback(identifier, model)
        h = forecaster.check_horizon(horizon)
        item = forecaster.make_input(frame_for(forecaster.spec))
        values: np.ndarray = await self._batcher.submit(model, item, source, timeout)
        forecast = Forecast(forecaster.future_timestamps(item)[:h], forecaster.spec.targets, values[:h], forecaster.iso)
        return Prediction(forecast, model, owner)


    def _count_fallback(self, identifier: str, model: LoadedModel) -> None:
        """Count a forecast by a model not trained for ``identifier``; log the first one per identifier."""
        synthetic = model.forecaster.spec.synthetic_data
        self.metrics.fallback_children[synthetic].inc()
        if identifier not in self._fallbacks_logged and len(self._fallbacks_logged) < FALLBACK_LOG_LIMIT:
            self._fallbacks_logged.add(identifier)
            log.info("fallback model answers identifier=%s model_uri=%s synthetic_data=%s reason=%s", identifier, model.uri,
                     synthetic, "no model trained for the identifier")


class _Slot:
    """One admitted prediction: holds a slot from ``with`` until the block ends (a class: cheaper than a generator)."""

    __slots__ = ("_predictor",)

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor

    def __enter__(self) -> None:
        self._predictor._in_flight += 1

    def __exit__(self, *exc_info: object) -> None:
        self._predictor._in_flight -= 1


# Young-generation threshold 5000 (CPython's default 700). At 700 the event loop ran a gen-0
# collection every ~23 requests (0.4-0.6 ms each) and a gen-1 every ~250 (~2 ms); at 5000, 3 gen-0
# collections in 7,328 requests (6.6 ms each, against a p99 of ~80 ms at 64 connections), and a
# /predict costs 4.4% fewer main-thread instructions (callgrind, 2000 requests at 64 connections:
# 1.017M -> 0.973M; 20000 saved 4.7%).
GC_THRESHOLDS = (5000, 20, 100)


def freeze_startup_heap() -> None:
    """Move every object alive after start-up (torch, mlflow, pandas, the models) out of the GC's reach.

    Full collections otherwise walk millions of long-lived objects: under load they stalled the
    event loop for hundreds of ms (p99 at 256 connections 759 -> 175 ms, accepted 643 -> 927 req/s).
    Collections of what is left run less often too (GC_THRESHOLDS).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("startup heap frozen objects=%d gc_thresholds=%s", gc.get_freeze_count(), GC_THRESHOLDS)

