"""Shared fixtures: real data location, small demo frames, an isolated MLflow store."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "barcelona-lte"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared Barcelona LTE files, or skip."""
    if not (REAL_DATA / "PobleSec.csv").exists():
        pytest.skip(f"real data not found at {REAL_DATA} (../shared is absent)")
    return REAL_DATA


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A throw-away SQLite tracking store, configured for this test."""
    from flts_streams.forecasting import packaging

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    packaging.configure(uri)
    packaging.ensure_experiment("test", tmp_path / "artifacts")
    return uri
