"""Model registry resolution: a missing model that may still come is transient, one that will not is NoModel."""

from __future__ import annotations

import pytest

from flts_streams.core.errors import ModelLoadError, ModelsNotReady, NoModel, RegistryUnavailable
from flts_streams.core.metrics import Metrics
from flts_streams.core.settings import Settings
from flts_streams.forecasting import packaging
from flts_streams.kafka.embedded_broker import free_port
from flts_streams.models.registry import ModelRegistry
from flts_streams.models.serving_rule import DEFAULT_KEY
from tests.test_flts_streams.helpers import model


def _predictor(tmp_path) -> ModelRegistry:
    return ModelRegistry(Settings(paths={"var_dir": tmp_path / "var"}), Metrics())


def test_no_model_while_loading_is_transient_then_permanent_once_settled(tmp_path):
    p = _predictor(tmp_path)
    with pytest.raises(ModelsNotReady, match="still loading"):
        p.resolve("A")
    p.initial_load_done.set()
    with pytest.raises(NoModel, match="flts train --identifier A") as caught:
        p.resolve("A")
    assert not isinstance(caught.value, ModelsNotReady)
    p.install(DEFAULT_KEY, model())
    assert p.resolve("A")[1] == DEFAULT_KEY


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
            p.resolve("A")
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


async def test_the_default_loads_before_the_champions_and_readiness_waits_for_all(tmp_path, monkeypatch):
    """1,000 champions loaded one by one before the default: every request failed for ~40 s (issue 27)."""
    p = ModelRegistry(
        Settings(paths={"var_dir": tmp_path / "var"}, model={"default_uri": "models:/flts-demo@champion"}), Metrics()
    )
    order: list[str] = []
    answers: list[str] = []

    def load(uri: str):
        if order:  # a champion is loading: the default already answers every identifier
            answers.append(p.resolve("B")[1])
        order.append(uri)
        return model()

    monkeypatch.setattr(packaging, "load", load)
    monkeypatch.setattr(
        p, "_registry_champions", lambda: {"A": ("1", "models:/flts-A/1"), "B": ("3", "models:/flts-B/3")}
    )
    assert not p.ready
    assert await p.load_champions() == 3
    assert order[0] == "models:/flts-demo@champion" and answers == [DEFAULT_KEY, DEFAULT_KEY]
    assert not p.ready  # the initial load is not over until every champion is in
    p.initial_load_done.set()
    assert p.ready and p.resolve("B")[1] == "B"
