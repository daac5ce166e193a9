"""Model lifecycle: load, follow the MLflow registry and champions table, install atomically, resolve with fallback."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mode import Service

from flts_streams.core.errors import ModelLoadError, ModelsNotReady, NoModel, RegistryUnavailable
from flts_streams.core.metrics import Metrics
from flts_streams.core.settings import Settings
from flts_streams.forecasting import packaging
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.models.serving_rule import DEFAULT_KEY

log = logging.getLogger(__name__)


class ModelRegistry(Service):
    """One loaded model per identifier plus a default; the only writer of that map (compare mlserver/registry.py)."""

    def __init__(self, settings: Settings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self._models: dict[str, LoadedModel] = {}
        self._failed: set[tuple[str, str]] = set()
        self._versions: dict[str, str] = {}  # identifier -> registry version last loaded
        self.initial_load_done = asyncio.Event()
        self._registry_ok = True  # False while the last registry contact failed: missing models may yet come

    async def on_start(self) -> None:
        """Point MLflow at the tracking store."""
        packaging.configure(self.settings.mlflow_tracking_uri)

    @Service.task
    async def _initial_load(self) -> None:
        try:
            await self.load_champions()
        finally:
            self.initial_load_done.set()

    @property
    def settled(self) -> bool:
        """True once the initial load is done and the registry answered last time: a missing model stays missing."""
        return self.initial_load_done.is_set() and self._registry_ok

    @property
    def ready(self) -> bool:
        """Every identifier is answered as it will be: the initial load is done and some model is loaded."""
        return self.initial_load_done.is_set() and bool(self._models)

    @property
    def has_model(self) -> bool:
        """True once any model (or the default) is loaded."""
        return bool(self._models)

    def models(self) -> dict[str, LoadedModel]:
        """Snapshot of loaded models by identifier."""
        return dict(self._models)

    async def load_champions(self, reload_default: bool = True) -> int:
        """Load the configured default, then every identifier's champion; returns how many loaded.

        The default first: with a thousand champions to load one by one, it answers every identifier
        meanwhile (flagged as a fallback); loaded last, every request failed until all were in (issue 27).
        """
        loaded = 0
        if self.settings.model.default_uri and (reload_default or DEFAULT_KEY not in self._models):
            loaded += await self._try_load(DEFAULT_KEY, self.settings.model.default_uri)
        return loaded + await self.follow_registry()

    async def _try_load(self, identifier: str, uri: str) -> bool:
        """Load unless this URI is known broken; a failure is logged, never raised (a broken one is remembered)."""
        if (identifier, uri) in self._failed:
            return False
        try:
            await self.load(identifier, uri)
        except RegistryUnavailable:
            self._registry_ok = False  # retried by the follow timer; claims wait rather than dead-letter
            log.warning(
                "model load deferred: registry unavailable identifier=%s uri=%s", identifier, uri, exc_info=True
            )
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
                        found[m.name[len(prefix) :]] = (str(version), f"models:/{m.name}/{version}")
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
