"""Closed-loop async HTTP load generator (N connections, each one request at a time)."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import numpy as np


@dataclass
class LoadResult:
    """Latencies of successful requests plus status and error counts."""

    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        """Requests answered 200."""
        return self.statuses.get(200, 0)

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    def quantile_ms(self, q: float) -> float:
        """Latency quantile of 200 answers, in ms."""
        return float(np.quantile(self.latencies, q) * 1000) if self.latencies else float("nan")


async def _client(session: aiohttp.ClientSession, method: str, url: str, body: bytes, headers: dict, stop_at: float, res: LoadResult) -> None:
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        try:
            async with session.request(method, url, data=body, headers=headers) as resp:
                await resp.read()
                res.statuses[resp.status] += 1
                if resp.status == 200:
                    res.latencies.append(time.perf_counter() - started)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            res.errors[type(exc).__name__] += 1


async def run_load(url: str, body: bytes, concurrency: int, seconds: float, method: str = "POST", warmup: float = 1.0) -> LoadResult:
    """Drive ``url`` with ``concurrency`` connections for ``seconds`` (after a warm-up)."""
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if warmup:
            scratch = LoadResult(concurrency, warmup)
            await asyncio.gather(*[_client(session, method, url, body, headers, time.perf_counter() + warmup, scratch) for _ in range(concurrency)])
        res = LoadResult(concurrency, seconds)
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*[_client(session, method, url, body, headers, stop_at, res) for _ in range(concurrency)])
    return res
