"""The README's first command: `flts dev` starts broker + worker, serves, and stops it all, however it is stopped."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from flts_streams.commands.dev_stack import join_or_start_broker
from flts_streams.core.errors import FltsError
from flts_streams.kafka.embedded_broker import free_port, start_tansu
from tests.integration.harness import poll

pytestmark = pytest.mark.integration
FLTS = str(Path(sys.executable).with_name("flts"))
ROOT = Path(__file__).resolve().parents[2]


def _dev(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLTS_")}
    env.update({"FLTS_BROKER_URL": f"kafka://127.0.0.1:{free_port()}", "FLTS_PATHS__VAR_DIR": str(tmp_path / "var")})
    env.update(env_extra)
    return subprocess.Popen(
        [FLTS, "dev", *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_flts_dev_serves_within_a_minute_on_the_configured_port_and_stops_cleanly(tmp_path):
    web = free_port()
    started = time.monotonic()
    proc = _dev(tmp_path, FLTS_WEB_PORT=str(web))  # the Faust setting, no flag: flags default to the settings
    try:
        poll(lambda: _ok(f"http://127.0.0.1:{web}/healthz"), timeout=60)
        assert time.monotonic() - started < 60
        metrics = requests.get(f"http://127.0.0.1:{web}/metrics", timeout=5)
        assert metrics.status_code == 200 and "# TYPE flts_http_requests_total counter" in metrics.text
        poll(lambda: _ok(f"http://127.0.0.1:{web}/readyz"), timeout=60)  # demo model loaded, tables recovered
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("tansu" in c.name() for c in children) and any("faust" in " ".join(c.cmdline()) for c in children)
        assert any(c.cmdline()[-1:] == ["trainer"] for c in children)  # retraining runs beside the worker
        assert (tmp_path / "var" / "mlflow.db").exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(45) == 0
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert f"curl http://127.0.0.1:{web}/readyz" in out and "examples/predict.json" in out


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL], ids=["SIGHUP", "SIGKILL"])
def test_no_broker_or_worker_outlives_flts_dev(tmp_path, sig):
    """A closed terminal (SIGHUP) or a killed `flts dev` left Tansu running; the next `make dev` joined it."""
    web = free_port()
    proc = _dev(tmp_path, "--no-demo", "--web-port", str(web))
    try:
        poll(lambda: _ok(f"http://127.0.0.1:{web}/healthz"), timeout=90)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("tansu" in c.name() for c in children) and any("faust" in " ".join(c.cmdline()) for c in children)
        assert any(c.cmdline()[-1:] == ["trainer"] for c in children)
        proc.send_signal(sig)
        proc.wait(45)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"left running after {sig.name}: {[c.cmdline()[:3] for c in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="runs this checkout's `make dev`, which uses its .venv (the tests run from another environment)",
)
def test_closing_the_terminal_of_make_dev_stops_everything(tmp_path):
    """A closed terminal signals only its session leader, make, which then waits for its child forever."""
    master, slave = os.openpty()

    def controlling_terminal() -> None:  # a new session whose terminal is the pty, as in a terminal window
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    web = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLTS_")} | {
        "FLTS_BROKER_URL": f"kafka://127.0.0.1:{free_port()}",
        "FLTS_PATHS__VAR_DIR": str(tmp_path / "var"),
        "FLTS_WEB_PORT": str(web),
    }
    make = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(ROOT), "dev"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    threading.Thread(target=_drain, args=(master,), daemon=True).start()  # a full pty would block the writers
    try:
        poll(lambda: _ok(f"http://127.0.0.1:{web}/healthz"), timeout=90)
        stack = [psutil.Process(make.pid), *psutil.Process(make.pid).children(recursive=True)]
        assert any("tansu" in p.name() for p in stack) and any("faust" in " ".join(p.cmdline()) for p in stack)
        os.close(master)  # the terminal window closes
        gone, alive = psutil.wait_procs(stack, timeout=45)
        assert alive == [], f"left running after the terminal closed: {[p.cmdline()[:3] for p in alive]}"
    finally:
        if make.poll() is None:
            for p in psutil.Process(make.pid).children(recursive=True):
                p.kill()
            make.kill()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:  # EIO once the terminal is closed
        pass


def test_a_taken_web_port_is_a_one_line_error_before_any_work(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _dev(tmp_path, FLTS_WEB_PORT=str(port))
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"web port {port} on 127.0.0.1 is in use by pid {os.getpid()}" in lines[0], out
    assert not (tmp_path / "var" / "mlflow.db").exists(), "nothing is trained before the port check"


def test_joining_a_running_broker_is_said_and_a_non_kafka_port_is_refused(tmp_path):
    said: list[str] = []
    broker = start_tansu("127.0.0.1", free_port(), tmp_path / "tansu.log")
    try:
        assert join_or_start_broker("127.0.0.1", broker.port, tmp_path / "other.log", said.append) is None
    finally:
        broker.stop()
    assert f"joining the Kafka broker already running at 127.0.0.1:{broker.port} (pid {broker.process.pid}" in said[0]
    assert f"kill {broker.process.pid}" in said[0]
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(FltsError, match="does not speak Kafka"):
            join_or_start_broker("127.0.0.1", other.getsockname()[1], tmp_path / "other.log", said.append)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
