"""Publish JSON events to Kafka from command-line tools (aiokafka, one short-lived producer)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tqdm import tqdm

from flts_streams.core.errors import BrokerError
from flts_streams.core.schemas import TrainingEvent
from flts_streams.streaming.claim_messages import DEADLINE_HEADER


async def send_record(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    """Send one record with a short-lived producer and wait for its ack."""
    # One record per batch keeps Tansu's end offsets exact; harmless on Apache Kafka.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0, request_timeout_ms=15000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def publish_training_event(bootstrap: str, topic: str, event: TrainingEvent) -> None:
    """Send a model-training event keyed by identifier."""
    asyncio.run(send_training_event(bootstrap, topic, event))


async def send_training_event(bootstrap: str, topic: str, event: TrainingEvent) -> None:
    """publish_training_event from a running event loop."""
    key = event.identifier.encode() if event.identifier else None
    try:
        await send_record(bootstrap, topic, key, event.model_dump_json(exclude_none=True).encode())
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"could not publish to {topic} at {bootstrap}: {exc!r}") from exc


@dataclass(frozen=True)
class ClaimPlan:
    """What `flts publish-claims` sends: N claims spread round-robin over identifiers."""

    objects: dict[str, str | list[str]]  # identifier -> object key, or keys its successive claims name in turn
    count: int
    bucket: str
    ttl_ms: int | None = None
    rate: float | None = None  # claims per second; None: as fast as the broker takes them
    keyed: bool = True


def replay_slices(rows: int, span: int, step: int) -> list[tuple[int, int]]:
    """(start, stop) of each replayed object: the last ``span`` rows up to every ``step``-th row, oldest first.

    How operators send data: each claim carries the recent past, a little further on than the last.
    """
    if span < 1 or step < 1:
        raise ValueError("span and step are positive row counts")
    return [(max(0, stop - span), stop) for stop in range(min(span, rows), rows + 1, step)]


@dataclass
class PublishSummary:
    """Outcome of a claim burst."""

    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    first_offsets: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Claims acknowledged per second."""
        return self.sent / self.seconds if self.seconds else 0.0


def claim_messages(plan: ClaimPlan, run_tag: str) -> Iterator[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]:
    """(key, value, headers) of every planned claim; claim ids are ``<run_tag>-<n>``."""
    idents = list(plan.objects)
    for n in range(plan.count):
        ident = idents[n % len(idents)]
        keys = plan.objects[ident]
        value = json.dumps(
            {
                "identifier": ident,
                "bucket": plan.bucket,
                "object_key": keys if isinstance(keys, str) else keys[(n // len(idents)) % len(keys)],
                "claim_id": f"{run_tag}-{n}",
            }
        ).encode()
        headers = []
        if plan.ttl_ms is not None:
            headers.append((DEADLINE_HEADER, str(int(time.time() * 1000) + plan.ttl_ms).encode()))
        yield (ident.encode() if plan.keyed else None), value, headers


async def _publish(
    bootstrap: str, topic: str, plan: ClaimPlan, run_tag: str, on_sent: Callable[[int], None]
) -> PublishSummary:
    # One record per batch keeps Tansu's end offsets exact; acks are awaited in windows for throughput.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1, linger_ms=0, request_timeout_ms=30000)
    summary = PublishSummary()
    started = time.perf_counter()
    await producer.start()
    try:
        window: list[asyncio.Future] = []
        for n, (key, value, headers) in enumerate(claim_messages(plan, run_tag)):
            if plan.rate:
                delay = started + n / plan.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            window.append(await producer.send(topic, value, key=key, headers=headers))
            if len(window) >= 512:
                await _settle(window, summary, on_sent)
        await _settle(window, summary, on_sent)
    finally:
        await producer.stop()
    summary.seconds = time.perf_counter() - started
    return summary


async def _settle(window: list[asyncio.Future], summary: PublishSummary, on_sent: Callable[[int], None]) -> None:
    for result in await asyncio.gather(*window, return_exceptions=True):
        if isinstance(result, BaseException):
            summary.failed += 1
        else:
            summary.sent += 1
            summary.first_offsets.setdefault(result.partition, result.offset)
    on_sent(len(window))
    window.clear()


def publish_claims(bootstrap: str, topic: str, plan: ClaimPlan, run_tag: str, progress: bool = True) -> PublishSummary:
    """Publish the planned claims with a progress bar; failures are counted, not raised."""
    bar = tqdm(total=plan.count, unit="claim", desc=f"publish {topic}", disable=not progress)
    try:
        return asyncio.run(_publish(bootstrap, topic, plan, run_tag, bar.update))
    except (KafkaError, OSError) as exc:
        raise BrokerError(f"could not publish to {topic} at {bootstrap}: {exc!r}") from exc
    finally:
        bar.close()
