"""Settings: the only environment reader, frozen, no clash with Faust's own settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from flts_streams.core.settings import Settings, child_env
from flts_streams.core.settings_doc import faust_env_names, our_env_names, settings_table

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("flts_streams", "agents", "tables", "web")


def _python_files():
    for pkg in PACKAGES:
        yield from (ROOT / pkg).rglob("*.py")


def _env_access(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb", "putenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
    return lines


def test_only_settings_reads_the_environment():
    offenders = {}
    for path in _python_files():
        if path.name == "settings.py":
            continue
        lines = _env_access(ast.parse(path.read_text()))
        if lines:
            offenders[str(path.relative_to(ROOT))] = lines
    assert offenders == {}


def test_child_env_inherits_and_overrides(monkeypatch):
    monkeypatch.setenv("FLTS_SERVING__MAX_IN_FLIGHT", "3")
    assert child_env({"X": "1"})["FLTS_SERVING__MAX_IN_FLIGHT"] == "3"
    env = child_env({"FLTS_WEB_PORT": "1"}, inherit_flts=False)
    assert "FLTS_SERVING__MAX_IN_FLIGHT" not in env and env["FLTS_WEB_PORT"] == "1"


def test_env_names_do_not_shadow_faust_settings():
    faust_env, ours = faust_env_names(), our_env_names()
    assert ours & faust_env == set()
    top_level = {f"FLTS_{name.upper()}" for name in Settings.model_fields}
    assert not any(env.startswith(t) for env in faust_env for t in top_level if env == t or env.startswith(t + "__"))


def test_nested_env_and_frozen(monkeypatch):
    monkeypatch.setenv("FLTS_SERVING__MAX_IN_FLIGHT", "7")
    monkeypatch.setenv("FLTS_TOPICS__INFERENCE", "claims-x")
    s = Settings()
    assert s.serving.max_in_flight == 7 and s.topics.inference == "claims-x"
    with pytest.raises(ValidationError):
        s.log_level = "DEBUG"  # type: ignore[misc]


def test_embedded_profile_applies_tansu_workarounds_only_when_enabled(monkeypatch):
    assert "producer_max_batch_size" not in Settings().faust_defaults()
    monkeypatch.setenv("FLTS_EMBEDDED__ENABLED", "true")
    conf = Settings().faust_defaults()
    assert conf["producer_max_batch_size"] == 1
    assert conf["broker_heartbeat_interval"] <= conf["broker_session_timeout"] / 3


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    assert settings_table() in readme, "README settings table is stale: regenerate with `flts settings`"


def test_agents_never_set_the_stream_current_event():
    """stream._set_current_event inside take_events corrupts the batch's event list (a claim lost, another doubled)."""
    for path in (ROOT / "agents").glob("*.py"):
        calls = [
            n
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Attribute) and n.attr == "_set_current_event"
        ]
        assert not calls, f"{path}:{calls[0].lineno}"


def test_object_concurrency_defaults_by_store_and_yields_to_the_setting(tmp_path):
    # A local directory's reads are CPU-bound (more threads only contend for the GIL); S3 waits on the network.
    assert Settings(paths={"var_dir": tmp_path}).object_concurrency() == 1
    assert Settings(storage={"url": "s3://127.0.0.1:9000"}).object_concurrency() == 8
    assert (
        Settings(storage={"url": "s3://127.0.0.1:9000"}, streaming={"object_concurrency": 3}).object_concurrency() == 3
    )
