"""Faust behaviour our agents work around (docs/ARCHITECTURE.md, "Known traps"), pinned with a throw-away app.

An exception that escapes an agent body loses that event: Faust restarts the agent, acks the
event anyway and commits past it. agents/ therefore catch per event and dead-letter or retry
(flts_streams/streaming/claim_processor.py, agents/models.py). If a Faust upgrade starts redelivering the
event, the test below fails and that handling can be reconsidered.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from flts_bench.worker import FAUST
from flts_streams.kafka.embedded_broker import ensure_topics
from tests.integration.harness import poll, produce

pytestmark = pytest.mark.integration

TRAP_APP = textwrap.dedent('''
    """An agent that raises on b"poison" and records every value it finished."""
    import os

    import faust

    from flts_streams.core.settings import Settings

    app = faust.App(os.environ["TRAP_ID"], broker=os.environ["TRAP_BROKER"], store="memory://", web_enabled=False,
                    topic_partitions=1, processing_guarantee="at_least_once", consumer_auto_offset_reset="earliest",
                    broker_commit_interval=0.5, **Settings(embedded={"enabled": True}).embedded_faust_overrides())
    topic = app.topic(os.environ["TRAP_TOPIC"], value_serializer="raw", partitions=1)


    @app.agent(topic)
    async def body(stream):
        async for value in stream:
            if value == b"poison":
                raise RuntimeError("poison event")
            with open(os.environ["TRAP_SEEN"], "ab") as seen:
                seen.write(value + b"\\n")
''')


async def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


def test_an_exception_escaping_an_agent_loses_its_event(broker, tmp_path: Path):
    topic, app_id = f"trap-{uuid.uuid4().hex[:6]}", f"trap-{uuid.uuid4().hex[:6]}"
    ensure_topics(broker.bootstrap, [topic], 1)
    (tmp_path / "trapapp.py").write_text(TRAP_APP)
    seen = tmp_path / "seen.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "TRAP_ID": app_id,
        "TRAP_BROKER": broker.url,
        "TRAP_TOPIC": topic,
        "TRAP_SEEN": str(seen),
    }
    values = [b"one", b"two", b"poison", b"three", b"four"]
    produce(broker.bootstrap, topic, [(None, v, None) for v in values])
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [FAUST, "-A", "trapapp", "worker", "-l", "info"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The agent crashed on the poison event, was restarted and went on with the next ones ...
        poll(lambda: seen.exists() and seen.read_bytes().split() == [b"one", b"two", b"three", b"four"], timeout=90)
        # ... and the offset committed for the group is past every record, the poison one included.
        poll(lambda: asyncio.run(_committed(broker.bootstrap, app_id, topic)) == len(values), timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert "poison event" in (tmp_path / "worker.log").read_text(errors="replace")
    # Nothing re-delivered it before the commit: the event is gone for good
    # (docs/ARCHITECTURE.md, "Known traps": catch per event).
    assert seen.read_bytes().split() == [b"one", b"two", b"three", b"four"]
