"""flts_bench.worker: a worker of another checkout runs that checkout's code (cwd and PYTHONPATH both)."""

from __future__ import annotations

import os
import subprocess

from flts_bench.worker import Worker


def test_a_worker_of_another_checkout_gets_its_cwd_and_pythonpath(tmp_path, monkeypatch):
    # `faust -A` imports the app from the cwd and later packages (web, agents, tables) from sys.path:
    # one of the two alone ran a mix of both checkouts' code in A/Bs before (docs/BENCHMARKS.md).
    seen = {}

    class FakePopen:
        def __init__(self, cmd, env, cwd, **kwargs):
            seen.update(cmd=cmd, env=env, cwd=cwd)

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    checkout = tmp_path / "old-checkout"
    Worker(tmp_path / "var", "kafka://127.0.0.1:1", checkout=checkout).start()
    assert seen["cwd"] == checkout and seen["env"]["PYTHONPATH"] == str(checkout)
    assert seen["cmd"][1:3] == ["-A", "flts_streams"]
    Worker(tmp_path / "var2", "kafka://127.0.0.1:1").start()
    assert seen["cwd"] is None  # this checkout: as installed, the environment's PYTHONPATH untouched
    assert seen["env"].get("PYTHONPATH") == os.environ.get("PYTHONPATH")
