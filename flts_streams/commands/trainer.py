"""`flts trainer`: retrains the identifiers named on training-requests, in a process of its own.

Training never runs on a serving worker's event loop or CPU budget: this process consumes the drift
detector's requests (consumer group `FLTS_RETRAINING__GROUP_ID`), trains from the identifier's claim
objects, registers the model in MLflow and announces it on model-training, where the workers' backtest
promotion decides. A request that cannot be met (too little data, unreadable objects) ends in a FAILED
event with the reason; nothing is promoted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer

from flts_streams.core.backoff import backoff_s
from flts_streams.core.errors import FltsError, TransientError
from flts_streams.core.schemas import TrainingEvent
from flts_streams.core.settings import Settings
from flts_streams.kafka.consumer_stop import stop_consumer
from flts_streams.streaming.claim_messages import Coordinates
from flts_streams.streaming.claim_objects import ObjectLimits
from flts_streams.streaming.claim_training_data import (
    InsufficientData,
    check_enough,
    claimed_objects,
    retraining_series,
    training_table,
)
from flts_streams.streaming.dead_letters import dead_letter, dead_letter_key
from flts_streams.streaming.object_store import open_store
from flts_streams.streaming.publishing import send_record, send_training_event

log = logging.getLogger(__name__)


def retrain(settings: Settings, request: dict[str, Any]) -> TrainingEvent:
    """Train the requested identifier from its recent claim objects; the model-training event that says how it went."""
    from flts_streams.forecasting.pipeline import train_and_register
    from flts_streams.forecasting.training import TrainConfig, min_rows

    identifier = str(request["identifier"])
    r, s = settings.retraining, settings.streaming
    try:
        store = open_store(settings)
        since = time.time() - r.lookback_days * 86400
        objects = claimed_objects(store, settings.storage.bucket, s.log_prefix, identifier, since)
        if not objects:
            raise InsufficientData(f"no processed claims of {identifier!r} in the last {r.lookback_days:g} days")
        table = training_table(
            store, objects, ObjectLimits(s.object_max_rows, s.object_max_columns), s.object_max_bytes
        )
        check_enough(table, r.min_rows)
        cfg = TrainConfig(epochs=r.epochs, members=r.members, distill_one=True)  # served as flts train's are: an MLP
        frames = retraining_series(table, cfg.features, min_rows(cfg), r.min_rows)
        reg = train_and_register(
            frames,
            identifier,
            cfg,
            registry_prefix=settings.model.registry_prefix,
            alias=settings.model.champion_alias,
            progress=False,
            decide=False,  # the workers' backtest on the SUCCESS event promotes, or not
            data_name=f"claims of {identifier}, {len(objects)} objects",
        )
    except TransientError:
        raise
    except (FltsError, ValueError, RuntimeError, OSError) as exc:  # bad or too little data: say so, promote nothing
        log.warning("retraining failed identifier=%s error=%s", identifier, exc)
        return TrainingEvent(
            status="FAILED", run_id=f"retrain-{uuid.uuid4().hex[:12]}", identifier=identifier, operation="retrain",
            reason=str(exc),
        )  # fmt: skip
    log.info(
        "retrained identifier=%s run_id=%s rows=%d series=%d objects=%d",
        identifier, reg.run_id, sum(len(f) for f in frames), len(frames), len(objects),
    )  # fmt: skip
    return TrainingEvent(
        status="SUCCESS", run_id=reg.run_id, model_uri=reg.model_uri, identifier=identifier, model_type=reg.model_type,
        operation="retrain", reason=str(request.get("reason") or ""),
    )  # fmt: skip


async def serve(settings: Settings, bootstrap: str, stop: asyncio.Event) -> None:
    """Consume training-requests until ``stop``: one request at a time, committed once its event is out."""
    consumer = AIOKafkaConsumer(
        settings.topics.training_requests,
        bootstrap_servers=bootstrap,
        group_id=settings.retraining.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=3_600_000,  # a retraining takes minutes: do not leave the group meanwhile
        session_timeout_ms=int(settings.embedded.session_timeout_s * 1000) if settings.embedded.enabled else 10000,
        heartbeat_interval_ms=int(settings.embedded.heartbeat_s * 1000) if settings.embedded.enabled else 3000,
    )
    await consumer.start()
    log.info("trainer consuming topic=%s group=%s", settings.topics.training_requests, settings.retraining.group_id)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=1000, max_records=1)
            for tp, records in batch.items():
                for record in records:
                    await _handle(settings, bootstrap, record)
                    await consumer.commit({tp: record.offset + 1})
    finally:
        await stop_consumer(consumer)  # consumer.stop() raised if the broker was down (kafka/consumer_stop.py)


async def _handle(settings: Settings, bootstrap: str, record: Any) -> None:
    """One request to its model-training event (retrying transient failures); a malformed one is dead-lettered."""
    try:
        request = json.loads(record.value)
        if not isinstance(request, dict) or not isinstance(request.get("identifier"), str):
            raise ValueError("a training request is a JSON object with an 'identifier' string")
    except ValueError as exc:
        log.warning(
            "training request dead-lettered partition=%s offset=%s error=%s", record.partition, record.offset, exc
        )
        where = Coordinates(record.topic, record.partition, record.offset)
        letter = dead_letter(record.value, record.key, exc, where)
        await send_record(bootstrap, settings.topics.dead_letter, dead_letter_key(record.key), letter)
        return
    attempt = 0
    while True:
        attempt += 1
        try:
            event = await asyncio.to_thread(retrain, settings, request)
            break
        except TransientError as exc:
            log.warning("retraining retried attempt=%d identifier=%s error=%s", attempt, request["identifier"], exc)
            await asyncio.sleep(backoff_s(settings.streaming.retry_backoff_s, attempt))
    await send_training_event(bootstrap, settings.topics.training, event)
    log.info(
        "published %s to %s identifier=%s run_id=%s",
        event.status,
        settings.topics.training,
        event.identifier,
        event.run_id,
    )


def run(settings: Settings, bootstrap: str) -> None:
    """Serve training requests until SIGTERM or SIGINT (then finish the request at hand and leave the group)."""
    import signal

    import torch

    torch.set_num_threads(settings.training.threads())  # `flts dev` sets one thread: the worker keeps the CPU

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, bootstrap, stop)

    asyncio.run(main())
