"""Model lifecycle: an index of champions, own models loaded on first use into a bounded LRU, resolve by the
serving rule (own champion, global champion, default).

Why lazy: a network has thousands of identifiers with a champion each. Loading every champion at
start-up took ~0.2 s per model (1,000: minutes) and held them all in memory; now start-up lists
the registry (one paged query) and loads only the default and the global model, and an
identifier's own model is loaded when it is first asked for (docs/ARCHITECTURE.md, "The serving rule").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mode import Service

from flts_streams.core.errors import ModelLoadError, ModelsNotReady, NoModel, RegistryUnavailable
from flts_streams.core.metrics import Metrics
from flts_streams.core.settings import Settings
from flts_streams.forecasting import packaging
from flts_streams.forecasting.packaging import LoadedModel
from flts_streams.models.serving_rule import DEFAULT_KEY, GLOBAL_KEY

log = logging.getLogger(__name__)
PINNED = (GLOBAL_KEY, DEFAULT_KEY)  # always loaded, never evicted, in serving order


class ModelRegistry(Service):
    """The only writer of the loaded models (compare mlserver/registry.py): pinned global/default, LRU of own models."""

    def __init__(self, settings: Settings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = metrics
        self._pinned: dict[str, LoadedModel] = {}  # GLOBAL_KEY / DEFAULT_KEY -> model
        self._own: OrderedDict[str, LoadedModel] = OrderedDict()  # identifier -> model, least recently used first
        self._index: dict[str, str] = {}  # identifier -> URI of its champion (loaded or not)
        self._versions: dict[str, str] = {}  # registered name's key -> alias version last seen
        self._table_runs: dict[str, str] = {}  # identifier -> champions-table run last seen
        self._failed: set[tuple[str, str]] = set()
        self._loading: dict[str, asyncio.Future[LoadedModel | None]] = {}  # one load per identifier at a time
        self._load_slots = asyncio.Semaphore(settings.model.max_concurrent_loads)
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
        """Every identifier is answered as it will be: the index is read, the global and default are loaded."""
        return self.initial_load_done.is_set() and self.has_model

    @property
    def has_model(self) -> bool:
        """True once some model can answer: a pinned one loaded or a champion indexed."""
        return bool(self._pinned or self._index)

    def models(self) -> dict[str, LoadedModel]:
        """Snapshot of the models in memory: the pinned ones, then own models."""
        return {**self._pinned, **self._own}

    def champions(self) -> dict[str, str]:
        """Snapshot of the index: identifier -> its champion's URI, loaded or not."""
        return dict(self._index)

    async def load_champions(self, reload_default: bool = True) -> int:
        """Load the configured default, then follow the registry (global model, champions index).

        Returns how many models loaded or champions changed. The default first: it answers every
        identifier while the rest loads (issue 27).
        """
        changed = 0
        if self.settings.model.default_uri and (reload_default or DEFAULT_KEY not in self._pinned):
            changed += await self._try_load(DEFAULT_KEY, self.settings.model.default_uri)
        return changed + await self.follow_registry()

    async def follow_registry(self) -> int:
        """Index each registered champion whose aliased version changed; reload it now if it is in memory."""
        listed = await asyncio.to_thread(self._registry_champions)
        self._registry_ok = listed is not None
        changed = 0
        for key, (version, uri) in (listed or {}).items():
            if self._versions.get(key) != version and await self._point(key, uri):
                self._versions[key] = version
                changed += 1
        return changed

    async def follow(self, champions: dict[str, tuple[str, str]]) -> int:
        """Index champions-table entries (identifier -> (uri, run_id)) whose run changed since last seen."""
        changed = 0
        for identifier, (uri, run_id) in champions.items():
            if self._table_runs.get(identifier) != run_id and await self._point(identifier, uri, run_id):
                self._table_runs[identifier] = run_id
                changed += 1
        return changed

    async def _point(self, key: str, uri: str, run_id: str | None = None) -> bool:
        """Make ``uri`` the champion of ``key``: pinned ones load now, own ones when used (now if in memory)."""
        if key in PINNED:
            current = self._pinned.get(key)
            if current is not None and run_id is not None and current.run_id == run_id:
                return True
            return await self._try_load(key, uri)
        self._index[key] = uri
        current = self._own.get(key)
        if current is None or (run_id is not None and current.run_id == run_id):
            return True
        return await self._try_load(key, uri)  # in memory: swap now, as a promotion expects

    def _registry_champions(self) -> dict[str, tuple[str, str]] | None:
        """key -> (version, versioned model URI) of every registered model carrying the champion alias.

        Keys are identifiers, and GLOBAL_KEY for the global model's name. None when the registry could not be listed.
        """
        s = self.settings.model
        client, found, token = MlflowClient(), {}, None
        query = f"name LIKE '{s.registry_prefix}%'"
        try:
            while True:
                page = client.search_registered_models(filter_string=query, page_token=token)
                for m in page:
                    version = (m.aliases or {}).get(s.champion_alias)
                    if version is not None:
                        key = GLOBAL_KEY if m.name == s.global_name else m.name[len(s.registry_prefix) :]
                        found[key] = (str(version), f"models:/{m.name}/{version}")
                token = page.token
                if not token:
                    break
            if s.global_name and not s.global_name.startswith(s.registry_prefix):
                found |= self._global_champion(client)
            return found
        except MlflowException:
            log.exception("cannot list registered models tracking_uri=%s", self.settings.mlflow_tracking_uri)
            return None

    def _global_champion(self, client: MlflowClient) -> dict[str, tuple[str, str]]:
        """The global model's champion when its name lies outside the identifiers' prefix."""
        name, alias = self.settings.model.global_name, self.settings.model.champion_alias
        for m in client.search_registered_models(filter_string=f"name = '{name}'"):
            version = (m.aliases or {}).get(alias)
            if version is not None:
                return {GLOBAL_KEY: (str(version), f"models:/{name}/{version}")}
        return {}

    async def _try_load(self, key: str, uri: str) -> bool:
        """Load unless this URI is known broken; a failure is logged, never raised (a broken one is remembered)."""
        if (key, uri) in self._failed:
            return False
        try:
            await self.load(key, uri)
        except RegistryUnavailable:
            self._registry_ok = False  # retried by the follow timer; claims wait rather than dead-letter
            log.warning("model load deferred: registry unavailable identifier=%s uri=%s", key, uri, exc_info=True)
            return False
        except ModelLoadError:
            self._failed.add((key, uri))  # do not retry a broken model every tick
            log.exception("model load failed identifier=%s uri=%s", key, uri)
            return False
        return True

    async def load(self, key: str, uri: str) -> LoadedModel:
        """Load a model off the event loop and swap it in atomically for ``key`` (an identifier or a pinned key)."""
        async with self._load_slots:  # a burst of first requests must not start a thousand loads at once
            started = time.perf_counter()
            model = await asyncio.to_thread(_load_pinned if key in PINNED else packaging.load, uri)
            self.metrics.model_load.observe(time.perf_counter() - started)
        if key not in PINNED:
            self._index[key] = uri  # evicted later, it comes back as this model
        self.install(key, model)
        return model

    def install(self, key: str, model: LoadedModel) -> None:
        """Serve ``model`` for ``key`` from now on (atomic swap); beyond the LRU bound the least used own one goes."""
        store = self._pinned if key in PINNED else self._own
        previous = store.get(key)
        store[key] = model  # one assignment: requests see the old or the new model
        if previous is not None:
            self.metrics.model_info.remove(key, previous.run_id, previous.uri)
        self.metrics.model_info.labels(key, model.run_id, model.uri).set(1)
        if store is self._own:
            self._own.move_to_end(key)
            while len(self._own) > self.settings.model.max_loaded:
                evicted, old = self._own.popitem(last=False)
                self.metrics.model_info.remove(evicted, old.run_id, old.uri)
                self.metrics.model_evictions.inc()
        self.metrics.models_loaded.set(len(self._pinned) + len(self._own))
        log.info("model installed identifier=%s uri=%s run_id=%s", key, model.uri, model.run_id)

    async def own_model(self, identifier: str) -> LoadedModel | None:
        """The champion of exactly this identifier (loaded if indexed), or None: no fallback."""
        if identifier in PINNED:
            return self._pinned.get(identifier)
        model = self._own.get(identifier)
        if model is None and identifier in self._index:
            model = await self._load_once(identifier, self._index[identifier])
        return model

    async def resolve(self, identifier: str) -> tuple[LoadedModel, str]:
        """(model, key of its owner) by the serving rule: own champion, global, default.

        Else ModelsNotReady (may change) or NoModel (will not). An own champion not in memory is
        loaded first (one load per identifier however many requests wait); one that cannot load is
        answered by the next rung, the answer saying so.
        """
        model = self._own.get(identifier)
        if model is not None:
            self._own.move_to_end(identifier)
            return model, identifier
        uri = self._index.get(identifier)
        if uri is not None and (model := await self._load_once(identifier, uri)) is not None:
            return model, identifier
        for key in PINNED:
            if (model := self._pinned.get(key)) is not None:
                return model, key
        if not self.settled:
            why = "the model registry is unreachable" if self.initial_load_done.is_set() else "models are still loading"
            raise ModelsNotReady(f"no model for identifier {identifier!r} yet: {why}; retry shortly")
        raise NoModel(
            f"no model for identifier {identifier!r}, no global model and no default model; train one with "
            f"`flts train --identifier {identifier}` (or `flts train --global`) or set FLTS_MODEL__DEFAULT_URI"
        )

    async def _load_once(self, identifier: str, uri: str) -> LoadedModel | None:
        """Load an own champion, shared by every request waiting for it; None when it cannot load now."""
        pending = self._loading.get(identifier)
        if pending is None:
            pending = asyncio.ensure_future(self._load_own(identifier, uri))
            self._loading[identifier] = pending
            pending.add_done_callback(lambda _: self._loading.pop(identifier, None))
        # shield: a request that gives up (deadline, client gone) must not cancel the others' load
        return await asyncio.shield(pending)

    async def _load_own(self, identifier: str, uri: str) -> LoadedModel | None:
        if await self._try_load(identifier, uri):
            return self._own.get(identifier)
        return None


def _load_pinned(uri: str) -> LoadedModel:
    """A default or global model: it answers most requests, so it gets a graph of its own (graph.private_graph)."""
    model = packaging.load(uri)
    model.forecaster.use_private_graph()
    return model
