"""Fixtures of the offline checks of docker/, k8s/ and the monitoring files (helpers: tests/test_deploy/helpers.py)."""

from __future__ import annotations

import pytest
import yaml

from tests.test_deploy.helpers import ROOT, render_kustomization


@pytest.fixture(scope="session")
def manifests() -> list[dict]:
    return render_kustomization(ROOT / "k8s")


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
