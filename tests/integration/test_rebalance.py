"""Claims published steadily while workers join and leave: every one ends with a result."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.harness import (
    Worker,
    assert_nothing_lost,
    claim,
    claims_env,
    put_demo_objects,
    start_broker,
    wait_for_results,
)

pytestmark = pytest.mark.integration
IDENTS = 12
RATE_HZ = 40  # steady trickle: claims arrive during every phase of a rebalance
BACKLOG = 600  # published just before each join/leave, so the rebalance meets a backlog (as in a takeover)


class SteadyPublisher(threading.Thread):
    """Publishes one claim every 1/RATE_HZ s (round-robin over identifiers), plus bursts on request, until stopped."""

    def __init__(self, bootstrap: str, run: str, idents: list[str]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.run_id, self.idents = bootstrap, run, idents
        self.ids: list[str] = []
        self.halt = threading.Event()
        self.bursts: queue.Queue[int] = queue.Queue()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    async def _publish(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, max_batch_size=1, linger_ms=0)
        await producer.start()
        try:
            while not self.halt.is_set():
                extra = 0
                while not self.bursts.empty():
                    extra += self.bursts.get_nowait()
                for _ in range(1 + extra):
                    await self._send(producer)
                await asyncio.sleep(1 / RATE_HZ)
        finally:
            await producer.stop()

    async def _send(self, producer: AIOKafkaProducer) -> None:
        n = len(self.ids)
        ident, cid = self.idents[n % len(self.idents)], f"{self.run_id}-c{n}"
        await producer.send_and_wait(
            "inference-data", claim(ident, f"{ident}.parquet", claim_id=cid), key=ident.encode()
        )
        self.ids.append(cid)


def test_claims_published_across_rebalances_are_all_processed(tmp_path, trained):
    broker = start_broker(tmp_path / "broker")
    objects = tmp_path / "objects"
    env = claims_env(trained, objects)
    run = f"reb-{uuid.uuid4().hex[:6]}"
    idents = [f"{run}-{i}" for i in range(IDENTS)]
    put_demo_objects(objects, idents, seed=700)
    a = Worker(tmp_path / "a", broker.url, env)
    b = Worker(tmp_path / "b", broker.url, env)
    publisher = SteadyPublisher(broker.bootstrap, run, idents)
    try:
        a.start().wait_ready()
        publisher.start()
        for _ in range(3):  # each join and each leave rebalances a while claims keep arriving
            publisher.bursts.put(BACKLOG)
            b.start().wait_ready()
            time.sleep(2)
            publisher.bursts.put(BACKLOG)
            b.stop()
            time.sleep(2)
        publisher.halt.set()
        publisher.join(30)
        assert publisher.error is None, publisher.error
        assert a.rebalances() >= 4, "the workers did not rebalance; the test proves nothing"
        assert_nothing_lost(
            wait_for_results(broker.bootstrap, run, len(publisher.ids), timeout=120, watch=a), publisher.ids
        )
    finally:
        publisher.halt.set()
        a.stop()
        b.stop()
        broker.stop()
