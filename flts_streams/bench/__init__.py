"""Benchmarks (separate from tests): each compares against a baseline measured in the same run."""
from __future__ import annotations

import psutil


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20
