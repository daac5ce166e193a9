"""Importing a module does no work: settings, errors, the command line and the MLflow model build no app."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("faust", "torch", "mlflow", "flts_bench")


def _imported_after(code: str, env: dict[str, str | None] | None = None) -> list[str]:
    probe = f"{code}\nimport sys\nprint('loaded:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    line = next(ln for ln in reversed(run.stdout.splitlines()) if ln.startswith("loaded:"))
    return [m for m in line.removeprefix("loaded:").split(",") if m]


@pytest.mark.parametrize(
    "code",
    [
        "import flts_streams.core.settings",
        "import flts_streams.core.errors",
        "from flts_streams.commands.cli import build_parser; build_parser()",
    ],
)
def test_light_modules_import_neither_faust_nor_torch(code):
    """Importing flts_streams.core.errors used to build the Faust app: 8.8 s and 477 MB; `flts --help` took 9.4 s."""
    assert _imported_after(code) == []


def test_the_mlflow_model_loads_without_faust():
    """`mlflow models serve` unpickles flts_streams.forecasting.pyfunc: it must not build a Faust app."""
    assert "faust" not in _imported_after("import flts_streams.forecasting.pyfunc")


def test_faust_finds_the_app_where_it_always_was():
    """`faust -A flts_streams` reads flts_streams.app (built on first access)."""
    code = (
        "from faust.cli.base import find_app\nfound = find_app('flts_streams')\nimport flts_streams\n"
        "assert type(found).__name__ == 'FltsApp' and flts_streams.app is found and flts_streams.app is found\n"
        "found.discover()"
    )  # every agent, table and view, as the worker imports them at start
    loaded = _imported_after(code)
    assert "faust" in loaded and "flts_bench" not in loaded, "the benchmarks are tooling: a worker never imports them"


def test_the_broker_url_without_the_app_is_the_one_faust_sees():
    code = (
        "from flts_streams.core.settings import Settings\nfrom flts_streams.app import create_app\n"
        "url, conf = Settings().broker_url(), create_app().conf\n"
        "assert url == str(conf.broker[0]), (url, conf.broker)"
    )
    _imported_after(code, {"FLTS_BROKER_URL": "kafka://127.0.0.1:19092"})
    _imported_after(code, {"FLTS_BROKER_URL": None})
