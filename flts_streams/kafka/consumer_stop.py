"""Stopping an aiokafka consumer, also while the broker is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, its fetcher closed first by close_fetcher (a stop during an outage raised otherwise)."""
    fetcher = consumer._fetcher  # noqa: SLF001 - None until the consumer started
    if fetcher is not None:
        await close_fetcher(fetcher)
    await consumer.stop()


async def close_fetcher(fetcher: Any) -> None:
    """aiokafka's ``Fetcher.close`` without its crash when a fetch task is cancelled in its retry back-off.

    Why: ``Fetcher.close`` (aiokafka 0.14.0, aiokafka/consumer/fetcher.py) cancels each pending fetch
    task and awaits it without catching CancelledError. A task catches its cancellation only while it
    awaits the broker; after a failed fetch it sleeps ``retry_backoff_ms`` first, uncaught, and with the
    broker unreachable it is nearly always there. So close raised, and ``AIOKafkaConsumer.stop`` with it
    before it closed its connections: Faust's consumer thread died without telling the worker, and a
    worker asked to stop during an outage took 60 s to exit (mode's shutdown timeout; k8s/statefulset.yaml
    allows 60 s, Kubernetes' default grace period is 30). The fetcher's own loop suppresses the same
    error when it cancels these tasks; no upstream issue found. After this, ``Fetcher.close`` finds
    nothing pending.
    """
    # The fetcher's internals, pinned by tests/integration/test_consumer_quirks.py.
    fetcher._closed = True  # noqa: SLF001
    fetcher._fetch_task.cancel()  # noqa: SLF001
    with contextlib.suppress(asyncio.CancelledError):
        await fetcher._fetch_task  # noqa: SLF001
    pending, fetcher._pending_tasks = list(fetcher._pending_tasks), set()  # noqa: SLF001
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
