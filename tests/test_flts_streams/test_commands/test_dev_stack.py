"""`flts dev`'s worker supervision and process plumbing, with real child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from flts_streams.commands import dev_stack
from flts_streams.core.processes import die_with_parent


def test_a_worker_that_crashes_is_restarted_and_one_that_keeps_failing_is_given_up(monkeypatch):
    monkeypatch.setattr(dev_stack, "QUICK_EXIT_S", 0.5)
    said: list[str] = []
    # Runs 0.7 s (longer than a quick exit), then "crashes" with 3; stopped on the third start.
    sup = dev_stack.Supervisor(
        [sys.executable, "-c", "import time; time.sleep(0.7); raise SystemExit(3)"], dict(os.environ), said.append
    )
    starts = []
    original = sup.start

    def counting_start():
        starts.append(time.monotonic())
        if len(starts) == 3:
            threading.Timer(0.2, sup.stop, args=(signal.SIGTERM,)).start()
        return original()

    sup.start = counting_start
    assert sup.run() == 0
    assert sup.restarts == 2 and all("restarting it" in s for s in said)

    said.clear()
    failing = dev_stack.Supervisor([sys.executable, "-c", "raise SystemExit(4)"], dict(os.environ), said.append)
    assert failing.run() == 4
    assert "giving up" in said[-1] and failing.restarts == dev_stack.MAX_QUICK_EXITS - 1


def test_a_stop_that_comes_while_a_restart_is_under_way_stops_the_new_worker():
    # The stop signalled the worker that had just exited (a no-op); the restart must not outlive it.
    sup = dev_stack.Supervisor([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), [].append)
    sup.process = subprocess.Popen([sys.executable, "-c", "pass"])
    sup.process.wait(30)
    sup.stop(signal.SIGTERM)
    assert sup.start().wait(30) == -signal.SIGTERM


def test_a_child_started_with_die_with_parent_dies_with_it():
    # The middle process starts a sleeper that should die with it, prints its pid, then is killed.
    code = (
        "import subprocess, sys; from flts_streams.core.processes import die_with_parent; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], preexec_fn=die_with_parent()); "
        "print(p.pid, flush=True); import time; time.sleep(60)"
    )
    middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(middle.stdout.readline())
    middle.kill()
    middle.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the grandchild outlived its killed parent"
    assert die_with_parent() is not None  # Linux: the mechanism is in place


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not reaped by its re-parent yet) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False
