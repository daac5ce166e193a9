"""The models agent (agents/models.py) on model-training events, through agent.test_context()."""

from __future__ import annotations

import asyncio
import json

import pytest

from agents.models import models
from flts_streams.app import app
from tests.integration.harness import consume

pytestmark = pytest.mark.integration


def _count(status: str) -> float:
    return app.metrics.registry.get_sample_value("flts_training_events_total", {"status": status}) or 0.0


async def test_bad_events_are_dead_lettered_unfinished_runs_ignored_and_bad_models_rejected(producer_on, mlflow_store):
    before = {s: _count(s) for s in ("invalid", "FAILED", "RUNNING", "SUCCESS")}
    async with models.test_context() as agent:
        await agent.put(b"\xff not json", key=b"run-0")
        await agent.put(json.dumps({"status": "DONE", "run_id": "r1"}).encode(), key=b"run-1")
        await agent.put(json.dumps({"status": "FAILED", "run_id": "r2"}).encode(), key=b"run-2")
        await agent.put(
            json.dumps({"status": "RUNNING", "run_id": "r5", "model_uri": "models:/flts-missing/1"}).encode(),
            key=b"run-5",
        )
        # A SUCCESS whose model cannot be loaded: rejected with the reason, the agent goes on.
        await agent.put(
            json.dumps({"status": "SUCCESS", "run_id": "r3", "model_uri": "models:/flts-missing/7"}).encode(),
            key=b"run-3",
        )
        await agent.put(b"[]", key=b"run-4")
        await app.producer.flush()
    assert {s: _count(s) - before[s] for s in before} == {"invalid": 3, "FAILED": 1, "RUNNING": 1, "SUCCESS": 1}

    letters = sorted(
        await _read(producer_on.bootstrap, app.kafka_topics.dead_letter.get_topic_name(), 3), key=lambda m: m["key"]
    )
    assert [m["key"] for m in letters] == [b"run-0", b"run-1", b"run-4"]  # keyed as the event was
    assert all("model-training event" in m["value"]["error"] for m in letters), letters
    assert "status" in letters[1]["value"]["error"]  # names the field that is wrong

    decisions = await _read(producer_on.bootstrap, app.kafka_topics.selected.get_topic_name(), None)  # all there are
    assert [d["value"]["run_id"] for d in decisions] == ["r3"]  # nothing for RUNNING, FAILED or invalid events
    assert decisions[0]["value"]["decision"] == "REJECTED"
    assert decisions[0]["value"]["reason"].startswith("evaluation failed")
    assert decisions[0]["value"]["identifier"] == "*"  # no identifier: the default model's slot
    assert await app.models.own_model("*") is None  # nothing was swapped in


async def _read(bootstrap: str, topic: str, expect: int | None) -> list[dict]:
    return await asyncio.to_thread(consume, bootstrap, topic, expect, 30.0)
