"""One way to start a real worker: `faust -A flts_streams worker` as a subprocess (shared by benchmarks and tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from flts_streams.core.settings import Settings, child_env
from flts_streams.kafka.embedded_broker import free_port

FAUST = str(Path(sys.executable).with_name("faust"))


def service_topics(settings: Settings | None = None) -> tuple[str, ...]:
    """The topics a worker consumes and produces (create them before it starts: Tansu does not auto-create)."""
    t = (settings or Settings()).topics
    return (t.inference, t.training, t.results, t.selected, t.dead_letter, t.training_requests)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_s(pid: int) -> float:
    """CPU seconds a process has used so far, user and system, all its threads."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@dataclass
class Worker:
    """One `faust -A flts_streams worker` subprocess on a free loopback web port, its log in ``var_dir``."""

    var_dir: Path
    broker_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    log_level: str = "info"
    app: str = "flts_streams"  # the Faust app module (`flts bench claims` also runs a bare one)
    # Another checkout's code (an A/B): its cwd and PYTHONPATH. Both: `faust -A` imports the app with the cwd first
    # on sys.path and the app's other top-level packages (web, agents, tables) after it is gone (docs/BENCHMARKS.md).
    checkout: Path | None = None
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        """Base URL of the worker's web server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The worker's process id (once started)."""
        assert self.process is not None, "worker not started"
        return self.process.pid

    def env(self) -> dict[str, str]:
        """The worker's environment: ours without inherited FLTS_* settings, then the worker's own, then extra_env."""
        return child_env(
            {
                "FLTS_BROKER_URL": self.broker_url,
                "FLTS_WEB_HOST": "127.0.0.1",
                "FLTS_WEB_PORT": str(self.port),
                "FLTS_NODE_CANONICAL_URL": self.url,
                "FLTS_PATHS__VAR_DIR": str(self.var_dir),
                "FLTS_EMBEDDED__ENABLED": "true",
            }
            | ({"PYTHONPATH": str(self.checkout)} if self.checkout else {})
            | self.extra_env,
            inherit_flts=False,
        )

    def start(self) -> Worker:
        """Start the subprocess in a session of its own (a signal to the caller's group does not reach it)."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.var_dir / f"worker-{self.port}.log"
        with open(self.log_path, "ab") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [FAUST, "-A", self.app, "worker", "-l", self.log_level],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.checkout,
            )
        return self

    def wait_ready(self, timeout: float = 90.0, path: str = "/readyz") -> float:
        """Seconds until ``path`` answered 200; raises with the log tail otherwise."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal the worker and wait for it; killed when it outlives ``timeout``. Returns its exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def rebalances(self) -> int:
        """How many times this worker has joined its consumer group (1 after start; more = rebalances)."""
        if not self.log_path or not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count("Joined group")

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the worker's log."""
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
