"""App composition: exact autodiscovered set, our packages, code hygiene rules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from flts_streams.app import FltsApp, app

ROOT = Path(__file__).resolve().parents[2]


def test_discovers_exactly_our_agents_tables_and_pages():
    app.discover()
    assert sorted(app.agents) == ["agents.claims.claims", "agents.models.models"]
    assert sorted(app.tables) == ["champions", "forecast_accuracy", "latest_frames", "target_history"]
    assert sorted(str(p) for p in app.web.views) == sorted(
        [
            "/accuracy",
            "/accuracy/{identifier}",
            "/admin/reload",
            "/docs",
            "/docs/static/{name}",
            "/frames/{identifier}",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/predict",
            "/predict/{identifier}",
            "/predict_ping",
            "/readyz",
        ]
    )


def test_top_level_packages_are_ours():
    for name in ("tables", "agents", "web", "flts_streams"):
        module = importlib.import_module(name)
        assert Path(module.__file__).resolve().parent == ROOT / name, f"{name} resolves to {module.__file__}"


def test_app_is_typed_composition_root():
    assert isinstance(app, FltsApp)
    assert app.conf.id == "flts-streams"
    assert str(app.conf.store) == "rocksdb:"
    assert (
        app.kafka_topics.inference.value_serializer == "raw"
    )  # we decode claims ourselves (docs/ARCHITECTURE.md, "Known traps")


def _sources():
    for pkg in ("flts_streams", "agents", "tables", "web"):
        for path in (ROOT / pkg).rglob("*.py"):
            yield path, ast.parse(path.read_text())


def test_no_print_and_no_global():
    bad = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bad.append(f"{path.name}:{node.lineno} print")
            if isinstance(node, ast.Global):
                bad.append(f"{path.name}:{node.lineno} global")
    assert bad == []


def test_no_module_level_mutable_containers():
    bad = []
    for path, tree in _sources():
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.List, ast.Dict, ast.Set)):
                bad.append(f"{path.name}:{node.lineno}")
    assert bad == []


def test_middlewares_are_installed_once_however_often_faust_inits_the_server():
    class FakeWeb:
        web_app = type("A", (), {"middlewares": []})()

    app.discover()  # web/middleware.py registers the error middleware
    assert app.http_middlewares
    web = FakeWeb()
    for _ in range(3):  # worker_init_post_autodiscover, Web.on_start, ...
        app.on_webserver_init(web)
    assert web.web_app.middlewares == app.http_middlewares
