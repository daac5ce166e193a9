"""Shared fixtures: real data location, small demo frames, an isolated MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The Barcelona LTE files are not in the repository (docs/ARCHITECTURE.md, "The data"): a clone's
# data/barcelona-lte/ first, then the copy beside the checkout on the project's own machines.
REAL_DATA_DIRS = (ROOT / "data" / "barcelona-lte", ROOT.parent / "shared" / "data" / "barcelona-lte")
REAL_FILES = ("PobleSec.csv", "PobleSec_test.csv", "ElBorn.csv", "ElBorn_test.csv")


def find_real_data() -> Path | None:
    """The first folder holding all four real-data files, or None."""
    return next((d for d in REAL_DATA_DIRS if all((d / f).is_file() for f in REAL_FILES)), None)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The Barcelona LTE files, or skip saying where they were looked for and how to get them."""
    found = find_real_data()
    if found is None:
        pytest.skip(
            f"real Barcelona LTE data not found in {' or '.join(str(d) for d in REAL_DATA_DIRS)}: it is not "
            "redistributed with the repository; see docs/ARCHITECTURE.md, 'The data', to get it"
        )
    return found


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A throw-away SQLite tracking store, configured for this test."""
    from flts_streams.forecasting import packaging

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    packaging.configure(uri)
    packaging.ensure_experiment("test", tmp_path / "artifacts")
    return uri
