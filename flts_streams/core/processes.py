"""Child processes that die with their parent, and who listens on a port (for one-line start-up errors)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies, whatever killed it.

    Linux's PR_SET_PDEATHSIG; None (nothing to do) elsewhere. The signal follows the *thread* that
    started the child, so start children from a thread that lives as long as they should.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = _prctl()  # resolved before the fork
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl: nobody would send the signal
            os.kill(os.getpid(), sig)

    return preexec


def set_parent_death_signal(sig: int) -> bool:
    """Have this process receive ``sig`` when its parent dies (Linux); True when set."""
    if not sys.platform.startswith("linux"):
        return False
    return _prctl()(PR_SET_PDEATHSIG, sig) == 0


def _prctl() -> Callable[..., int]:
    """libc's prctl (Linux)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl


def has_terminal() -> bool:
    """Whether this process still has a controlling terminal (a hung-up terminal is taken away from the session)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
    except OSError:
        return False
    return True


def listener(port: int) -> tuple[int | None, str]:
    """(pid, 'pid N (name)') of the process listening on TCP ``port``, or (None, 'an unknown process')."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid, f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    except (psutil.Error, OSError):
        pass
    return None, "an unknown process"
