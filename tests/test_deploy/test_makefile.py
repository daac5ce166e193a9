"""The README's two commands start in the Makefile: a supported Python or one clear line, torch's CPU build on Linux."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREREQUISITES = (
    "Makefile",
    "setup.cfg",
    "setup.py",
    "pyproject.toml",
    "flts_streams/serving/_native_body.c",
    "flts_streams/forecasting/_records_json.c",
)


@pytest.fixture
def checkout(tmp_path) -> Path:
    for name in PREREQUISITES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _make(checkout: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(checkout), *args], capture_output=True, text=True, timeout=60
    )


def test_an_unsupported_python_stops_with_one_line_before_any_install(checkout):
    fake = checkout / "python3"
    fake.write_text("#!/bin/sh\necho 3.12\n")  # answers the Makefile's version question as a Python 3.12 would
    fake.chmod(0o755)
    out = _make(checkout, f"PYTHON={fake}", "install")
    assert out.returncode != 0
    assert f"flts-streams needs Python 3.11; {fake} is 3.12." in out.stdout
    assert not (checkout / ".venv").exists(), "nothing is installed with an unsupported Python"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU index is chosen on Linux only")
def test_torch_comes_from_the_cpu_index_on_linux_and_a_gpu_user_can_change_it(checkout):
    plan = _make(checkout, f"PYTHON={sys.executable}", "-n", "install").stdout
    torch_line = next(line for line in plan.splitlines() if "torch==" in line)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in torch_line
    assert plan.index("torch==") < plan.index("-e '.[dev]'"), "torch first, so the project install finds it satisfied"
    gpu = _make(checkout, f"PYTHON={sys.executable}", "TORCH_INDEX=", "-n", "install").stdout
    assert "--extra-index-url" not in next(line for line in gpu.splitlines() if "torch==" in line)
