"""Dependencies point one way between the packages (docs/ARCHITECTURE.md, "Where things live")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Package -> the packages its modules may import (besides itself). Lazy imports inside functions count:
# they are dependencies all the same. Lower layers first.
ALLOWED: dict[str, set[str]] = {
    "flts_streams.core": set(),
    "flts_streams.forecasting": {"flts_streams.core"},
    "flts_streams.kafka": {"flts_streams.core"},
    "flts_streams.models": {"flts_streams.core", "flts_streams.forecasting"},
    "flts_streams.serving": {"flts_streams.core", "flts_streams.forecasting", "flts_streams.models"},
    "flts_streams.streaming": {
        "flts_streams.core",
        "flts_streams.forecasting",
        "flts_streams.models",
        "flts_streams.kafka",
    },
    "flts_streams.app": {
        "flts_streams.core",
        "flts_streams.kafka",
        "flts_streams.models",
        "flts_streams.serving",
        "flts_streams.streaming",
    },
    "flts_streams": {"flts_streams.app"},  # the package itself: the lazy `app` only
    "tables": {"flts_streams"},
    "agents": {"flts_streams", "tables"},
    "web": {"flts_streams", "tables"},
    # The command line and the benchmarks sit on top: they may use anything but the Faust modules.
    "flts_streams.commands": {"flts_streams", "flts_bench"},
    "flts_bench": {"flts_streams"},
}
OURS = ("flts_streams", "tables", "agents", "web", "flts_bench")
TOP_ONLY = {"flts_streams.commands", "flts_bench"}  # nothing below may import these


def _package_of(module: str) -> str:
    """The most specific ALLOWED key that ``module`` belongs to."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in ALLOWED:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} belongs to no package in ALLOWED: add it")


def _imports(path: Path, module: str) -> set[str]:
    """Our modules imported anywhere in the file (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            base = node.module or ""
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module` names a module
    return {m for m in found if m.split(".")[0] in OURS}


def _modules():
    for top in OURS:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path


def _allowed(importer: str, imported: str) -> bool:
    """May a module of package ``importer`` import ``imported`` (a module or a name in one)?"""
    target = _package_of(imported)
    if target == importer or (target == "flts_streams" and imported.startswith("flts_streams.app")):
        return importer != "flts_streams" or imported.startswith("flts_streams.app")
    if target in TOP_ONLY and importer not in TOP_ONLY:
        return False
    allowed = ALLOWED[importer]
    return any(target == a or target.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("module,path", list(_modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down_the_layers(module, path):
    package = _package_of(module)
    wrong = sorted(i for i in _imports(path, module) if not _allowed(package, i))
    assert not wrong, f"{module} ({package}) may import only {sorted(ALLOWED[package])}; it imports {wrong}"


def test_the_rule_catches_an_upward_import():
    assert not _allowed("flts_streams.core", "flts_streams.models.predictor")
    assert not _allowed("flts_streams.models", "flts_streams.serving.admission")
    assert not _allowed("tables", "agents.claims")
    assert not _allowed("flts_streams.streaming", "flts_streams.commands.cli")
    assert _allowed("web", "flts_streams.models.answers.prediction_json")
