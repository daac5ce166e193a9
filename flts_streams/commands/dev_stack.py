"""`flts dev`'s stack: port checks, the embedded broker (or one already running), a supervised worker."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flts_streams.core.errors import FltsError
from flts_streams.core.processes import die_with_parent, has_terminal, listener, set_parent_death_signal
from flts_streams.kafka import embedded_broker as b

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
QUICK_EXIT_S = 20.0  # a worker that dies sooner than this after its start is failing, not crashing once
MAX_QUICK_EXITS = 3


@dataclass(frozen=True)
class WebAddress:
    """Where the worker's web server binds and how clients reach it."""

    bind: str
    host: str
    port: int


def check_web_port(web: WebAddress) -> None:
    """One-line error when the web port is taken (instead of the worker's traceback after the whole start-up)."""
    if not b.port_free(web.bind, web.port):
        raise FltsError(
            f"web port {web.port} on {web.bind} is in use by {listener(web.port)[1]}; stop it, or pick "
            f"another port: FLTS_WEB_PORT={web.port + 1} make dev (or flts dev --web-port {web.port + 1})"
        )


def join_or_start_broker(host: str, port: int, log_path: Path, say: Callable[[str], None]) -> b.EmbeddedBroker | None:
    """The embedded broker when nothing answers at host:port; None (and say so) when a Kafka broker already does."""
    if not b.port_open(host, port):
        if not b.is_loopback(host):
            raise FltsError(f"no broker answers at {host}:{port} and it is not a loopback address; start Kafka first")
        return b.start_tansu(host, port, log_path)
    pid, owner = listener(port)
    if not b.speaks_kafka(host, port):
        raise FltsError(
            f"broker port {port} on {host} is taken by {owner}, which does not speak Kafka; stop it, "
            f"or point FLTS_BROKER_URL at a free port (e.g. kafka://127.0.0.1:{port + 1})"
        )
    say(
        f"flts dev: joining the Kafka broker already running at {host}:{port} ({owner}); this command did not start "
        f"it, so its topics, data and consumer group are reused. For a fresh embedded broker stop that process "
        f"first{f' (kill {pid})' if pid else ''}."
    )
    return None


def hang_up_with_parent() -> bool:
    """Receive SIGHUP when the parent (a terminal's shell, make) dies, unless started under nohup; True when set."""
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return False
    return set_parent_death_signal(signal.SIGHUP)


@dataclass
class Supervisor:
    """Runs the worker, stops it on SIGINT/SIGTERM/SIGHUP, restarts it when it crashes (the broker keeps its data)."""

    cmd: list[str]
    env: dict[str, str]
    say: Callable[[str], None]
    process: subprocess.Popen | None = None
    stopping: bool = False
    quick_exits: int = 0
    restarts: int = 0
    _started_at: float = field(default=0.0, repr=False)
    # A closed terminal signals only its session leader: under `make dev` that is make, which then
    # waits for us forever. So we watch the terminal ourselves and stop when it is gone.
    _terminal: bool = field(default_factory=has_terminal, repr=False)

    def start(self) -> subprocess.Popen:
        """Start the worker in its own session (terminal signals come to us) that dies with this process."""
        self._started_at = time.monotonic()
        self.process = subprocess.Popen(self.cmd, env=self.env, start_new_session=True, preexec_fn=die_with_parent())
        if self.stopping:  # a stop that came while a restart was under way signalled the old process, not this one
            self.process.send_signal(signal.SIGTERM)
        return self.process

    def stop(self, signum: int, _frame: Any = None) -> None:
        """Signal handler: stop the worker gracefully and do not restart it."""
        self.stopping = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Supervise until stopped, or until the worker keeps failing at start; returns the exit code."""
        previous = {sig: signal.signal(sig, self.stop) for sig in STOP_SIGNALS}
        try:
            self.start()
            while True:
                code = self._wait()
                if self.stopping:
                    return 0 if code in (0, -signal.SIGTERM) else code
                if not self._should_restart(code):
                    return code or 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wait(self) -> int:
        assert self.process is not None
        ticks = 0
        while self.process.poll() is None:
            time.sleep(0.2)
            ticks += 1
            if self._terminal and ticks % 5 == 0 and not self.stopping and not has_terminal():
                self.say("flts dev: the terminal is gone; stopping")
                self.stop(signal.SIGHUP)
        return self.process.returncode

    def _should_restart(self, code: int) -> bool:
        quick = time.monotonic() - self._started_at < QUICK_EXIT_S
        self.quick_exits = self.quick_exits + 1 if quick else 0
        if self.quick_exits >= MAX_QUICK_EXITS:
            self.say(
                f"flts dev: the worker exited with code {code} {MAX_QUICK_EXITS} times in a row within "
                f"{QUICK_EXIT_S:g}s of starting; giving up (see its log above)"
            )
            return False
        self.restarts += 1
        self.say(f"flts dev: the worker exited with code {code}; restarting it (the broker and its data are kept)")
        self.start()
        return True


def start_trainer(env: dict[str, str]) -> subprocess.Popen:
    """`flts trainer` beside the worker, on one torch thread, dying with this process (stopped by the caller)."""
    flts_bin = str(Path(sys.executable).with_name("flts"))
    trainer_env = env | {"FLTS_TRAINING__TORCH_THREADS": "1"}
    return subprocess.Popen(
        [flts_bin, "trainer"], env=trainer_env, start_new_session=True, preexec_fn=die_with_parent()
    )


def stop_trainer(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Stop the trainer (it finishes the request at hand); killed if it outlives ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def worker_command(web: WebAddress) -> list[str]:
    """`faust -A flts_streams worker` of this environment, on the given web address."""
    faust_bin = str(Path(sys.executable).with_name("faust"))
    return [
        faust_bin,
        "-A",
        "flts_streams",
        "worker",
        "-l",
        "info",
        "--web-host",
        web.host,
        "--web-port",
        str(web.port),
    ]
