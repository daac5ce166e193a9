"""Model registry resolution: a missing model that may still come is transient, one that will not is NoModel."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from flts_streams.core.errors import ModelLoadError, ModelsNotReady, NoModel, RegistryUnavailable
from flts_streams.core.metrics import Metrics
from flts_streams.core.settings import Settings
from flts_streams.forecasting import packaging
from flts_streams.kafka.embedded_broker import free_port
from flts_streams.models.registry import ModelRegistry
from flts_streams.models.serving_rule import DEFAULT_KEY, GLOBAL_KEY
from tests.test_flts_streams.helpers import model


def _predictor(tmp_path) -> ModelRegistry:
    return ModelRegistry(Settings(paths={"var_dir": tmp_path / "var"}), Metrics())


async def test_no_model_while_loading_is_transient_then_permanent_once_settled(tmp_path):
    p = _predictor(tmp_path)
    with pytest.raises(ModelsNotReady, match="still loading"):
        await p.resolve("A")
    p.initial_load_done.set()
    with pytest.raises(NoModel, match="flts train --identifier A") as caught:
        await p.resolve("A")
    assert not isinstance(caught.value, ModelsNotReady)
    p.install(DEFAULT_KEY, model())
    assert (await p.resolve("A"))[1] == DEFAULT_KEY


async def test_an_unreachable_registry_keeps_a_missing_model_transient(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    p = ModelRegistry(
        Settings(paths={"var_dir": tmp_path / "var"}, model={"tracking_uri": f"http://127.0.0.1:{free_port()}"}),
        Metrics(),
    )
    packaging.configure(p.settings.mlflow_tracking_uri)
    try:
        assert await p.follow_registry() == 0
        p.initial_load_done.set()
        with pytest.raises(ModelsNotReady, match="registry is unreachable"):
            await p.resolve("A")
    finally:
        packaging.configure(Settings(paths={"var_dir": tmp_path / "var"}).mlflow_tracking_uri)


def test_load_tells_a_broken_uri_from_an_unreachable_registry(tmp_path, monkeypatch):
    """MLflow's error codes, which the split relies on: RESOURCE_DOES_NOT_EXIST vs INTERNAL_ERROR (unreachable)."""
    packaging.configure(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(ModelLoadError, match="not found"):
        packaging.load("models:/flts-nothing@champion")
    with pytest.raises(ModelLoadError):
        packaging.load("runs:/0123456789abcdef/model")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    packaging.configure(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(RegistryUnavailable):
            packaging.load("models:/flts-nothing@champion")
    finally:
        packaging.configure(f"sqlite:///{tmp_path / 'mlflow.db'}")


async def test_a_registry_outage_defers_the_default_model_and_a_later_follow_loads_it(tmp_path, monkeypatch):
    p = ModelRegistry(
        Settings(paths={"var_dir": tmp_path / "var"}, model={"default_uri": "models:/flts-demo@champion"}), Metrics()
    )
    calls = []

    def flaky(uri: str):
        calls.append(uri)
        if len(calls) == 1:
            raise RegistryUnavailable("registry down")
        return model()

    monkeypatch.setattr(packaging, "load", flaky)
    monkeypatch.setattr(p, "_registry_champions", lambda: {})
    assert await p.load_champions() == 0 and not p.has_model
    assert await p.load_champions(reload_default=False) == 1, "a registry outage must not mark the model broken"
    assert await p.load_champions(reload_default=False) == 0 and len(calls) == 2  # loaded: not reloaded every tick


def _registry(tmp_path, monkeypatch, listed: dict[str, tuple[str, str]], **settings) -> tuple[ModelRegistry, list]:
    """A registry whose MLflow listing is ``listed`` and whose loads are recorded (each URI a distinct model)."""
    p = ModelRegistry(Settings(paths={"var_dir": tmp_path / "var"}, model=settings), Metrics())
    base, loads = model(), []

    def load(uri: str):
        loads.append(uri)
        return dataclasses.replace(base, uri=uri, run_id=f"run-of-{uri}")

    monkeypatch.setattr(packaging, "load", load)
    monkeypatch.setattr(p, "_registry_champions", lambda: dict(listed))
    return p, loads


def _series(p: ModelRegistry) -> set[str]:
    return {s.labels["identifier"] for m in p.metrics.model_info.collect() for s in m.samples}


async def test_start_up_indexes_champions_and_loads_only_the_default(tmp_path, monkeypatch):
    """1,000 champions loaded one by one at start-up: minutes, and every request failed meanwhile (issue 27)."""
    listed = {f"c{i}": ("1", f"models:/flts-c{i}/1") for i in range(1000)}
    p, loads = _registry(tmp_path, monkeypatch, listed, default_uri="models:/flts-demo@champion")
    assert not p.ready
    await p.load_champions()
    p.initial_load_done.set()
    assert p.ready and loads == ["models:/flts-demo@champion"]
    assert len(p.champions()) == 1000 and set(p.models()) == {DEFAULT_KEY}
    model_, owner = await p.resolve("c7")
    assert owner == "c7" and model_.uri == "models:/flts-c7/1" and loads[-1] == "models:/flts-c7/1"
    assert (await p.resolve("c7"))[0] is model_ and len(loads) == 2  # loaded once


async def test_requests_waiting_for_a_loading_model_share_one_load_and_get_it(tmp_path, monkeypatch):
    p, loads = _registry(tmp_path, monkeypatch, {"A": ("1", "models:/flts-A/1")}, default_uri="models:/d/1")
    await p.load_champions()
    p.initial_load_done.set()
    release = threading.Event()
    real = packaging.load

    def slow(uri: str):
        release.wait(10)
        return real(uri)

    monkeypatch.setattr(packaging, "load", slow)
    waiting = [asyncio.ensure_future(p.resolve("A")) for _ in range(20)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiting)  # nobody is answered by a fallback while the own model loads
    waiting[0].cancel()  # one caller gives up: the load goes on for the others
    release.set()
    answers = await asyncio.gather(*waiting[1:])
    assert {owner for _, owner in answers} == {"A"} and loads.count("models:/flts-A/1") == 1


async def test_own_models_beyond_the_bound_are_unloaded_least_recently_used_first(tmp_path, monkeypatch):
    listed = {i: ("1", f"models:/flts-{i}/1") for i in "ABC"}
    p, loads = _registry(tmp_path, monkeypatch, listed, max_loaded=2)
    await p.load_champions()
    p.initial_load_done.set()
    await p.resolve("A")
    await p.resolve("B")
    await p.resolve("A")  # B is now the least recently used
    await p.resolve("C")
    assert set(p.models()) == {"A", "C"} and _series(p) == {"A", "C"}  # per-identifier series only in memory
    assert p.metrics.model_evictions._value.get() == 1
    assert (await p.resolve("B"))[1] == "B" and loads.count("models:/flts-B/1") == 2  # back on demand


async def test_the_serving_order_is_own_then_global_then_default(tmp_path, monkeypatch):
    listed = {"A": ("1", "models:/flts-A/1"), GLOBAL_KEY: ("4", "models:/flts-global/4")}
    p, loads = _registry(tmp_path, monkeypatch, listed, default_uri="models:/d/1")
    await p.load_champions()
    p.initial_load_done.set()
    assert sorted(loads) == ["models:/d/1", "models:/flts-global/4"]  # pinned: loaded at start
    assert (await p.resolve("A"))[1] == "A"
    assert (await p.resolve("Z"))[1] == GLOBAL_KEY
    p._pinned.pop(GLOBAL_KEY)
    assert (await p.resolve("Z"))[1] == DEFAULT_KEY


async def test_an_own_champion_that_cannot_load_is_answered_by_the_next_rung_and_not_retried(tmp_path, monkeypatch):
    p, loads = _registry(tmp_path, monkeypatch, {"A": ("1", "models:/flts-A/1")}, default_uri="models:/d/1")
    await p.load_champions()
    p.initial_load_done.set()

    def broken(uri: str):
        loads.append(uri)
        raise ModelLoadError("corrupt weights")

    monkeypatch.setattr(packaging, "load", broken)
    assert (await p.resolve("A"))[1] == DEFAULT_KEY
    assert (await p.resolve("A"))[1] == DEFAULT_KEY and loads.count("models:/flts-A/1") == 1


async def test_a_new_champion_swaps_at_once_when_in_memory_and_is_only_indexed_otherwise(tmp_path, monkeypatch):
    listed = {"A": ("1", "models:/flts-A/1"), "B": ("1", "models:/flts-B/1")}
    p, loads = _registry(tmp_path, monkeypatch, listed)
    await p.load_champions()
    p.initial_load_done.set()
    await p.resolve("A")
    listed.update(A=("2", "models:/flts-A/2"), B=("2", "models:/flts-B/2"))
    assert await p.follow_registry() == 2
    assert p.models()["A"].uri == "models:/flts-A/2" and "B" not in p.models()
    assert p.champions()["B"] == "models:/flts-B/2"
    assert await p.follow_registry() == 0  # nothing changed: nothing reloaded
    assert loads == ["models:/flts-A/1", "models:/flts-A/2"]


async def test_the_global_models_name_outside_the_prefix_is_found_too(tmp_path):
    """The real MLflow listing (sqlite store): identifiers by prefix, the global model by its own name."""
    from mlflow.tracking import MlflowClient

    settings = Settings(paths={"var_dir": tmp_path / "var"}, model={"global_name": "network-global"})
    packaging.configure(settings.mlflow_tracking_uri)
    client = MlflowClient()
    for name in ("flts-A", "network-global", "other"):
        client.create_registered_model(name)
        client.create_model_version(name, source="file:///nowhere", run_id=None)
        client.set_registered_model_alias(name, "champion", "1")
    found = ModelRegistry(settings, Metrics())._registry_champions()
    assert found == {"A": ("1", "models:/flts-A/1"), GLOBAL_KEY: ("1", "models:/network-global/1")}
