"""Agent tests run the agent body in-process (agent.test_context()) with a real producer on Tansu."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from faust import transport
from yarl import URL

from flts_streams.app import app
from flts_streams.kafka.embedded_broker import EmbeddedBroker
from tests.integration.harness import start_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[EmbeddedBroker]:
    """A broker of this module's own, so the topics hold only what these tests sent."""
    b = start_broker(tmp_path_factory.mktemp("agents-broker"))
    yield b
    b.stop()


@pytest.fixture
async def producer_on(broker: EmbeddedBroker) -> AsyncIterator[EmbeddedBroker]:
    """The app's producer, for one test, on ``broker`` (a producer is bound to the loop that starts it)."""
    url = URL(broker.url)
    app.producer = transport.by_url(url)([url], app).create_producer(loop=asyncio.get_running_loop(), beacon=app.beacon)
    try:
        yield broker
    finally:
        await app.producer.stop()
        app._producer = None  # the next user creates its own
