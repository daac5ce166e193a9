"""Request bodies being received: a byte budget across all of them, and a deadline for each."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from flts_streams.core.errors import BodyTimeout, Overloaded


class BodyBudget:
    """Bounds the bytes of request bodies being received at once; a body beyond it is refused before it is read.

    100 uploads stopping one byte short of a declared 4 MB held ~517 MB in the worker: each
    partial body was buffered by the read that never completed.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.reserved = 0

    def reserve(self, size: int) -> _Reservation:
        """Hold ``size`` bytes of the budget while the body is read (use with ``with``); Overloaded when full."""
        if self.reserved + size > self.max_bytes:
            raise Overloaded(
                f"{self.reserved} bytes of request bodies are being received (limit {self.max_bytes}); retry shortly"
            )
        return _Reservation(self, size)


class _Reservation:
    __slots__ = ("_budget", "_size")

    def __init__(self, budget: BodyBudget, size: int) -> None:
        self._budget, self._size = budget, size

    def __enter__(self) -> None:
        self._budget.reserved += self._size

    def __exit__(self, *exc_info: object) -> None:
        self._budget.reserved -= self._size


async def read_within(read: Awaitable[bytes], timeout_s: float) -> bytes:
    """The body ``read`` gives, or BodyTimeout when it has not arrived whole within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):  # a timer, not a task as wait_for makes in Python 3.11
            return await read
    except TimeoutError as exc:
        raise BodyTimeout(f"the request body did not arrive within {timeout_s:g}s; send it whole, promptly") from exc
