"""Agent on model-training: evaluate SUCCESS events, promote champions; every worker follows the champions table."""

import asyncio
import logging

from faust import StreamT
from faust.types import EventT

from flts_streams.app import app
from flts_streams.core.errors import FltsError
from flts_streams.forecasting.demo import demo_prepared_frame
from flts_streams.models.promotion import (
    Decision,
    champion_from_table,
    decode_training_event,
    evaluate,
    model_uri_of,
    set_registry_alias,
)
from flts_streams.models.serving_rule import DEFAULT_KEY
from flts_streams.streaming.claim_messages import Coordinates
from flts_streams.streaming.dead_letters import dead_letter, dead_letter_key
from flts_streams.streaming.frame_codec import decode_frame
from tables.champions import champions
from tables.latest_frames import latest_frames

log = logging.getLogger(__name__)


@app.agent(app.kafka_topics.training, concurrency=1)
async def models(stream: StreamT) -> None:
    """One event at a time: promotions are rare and each one is decided against the previous."""
    async for event in stream.events():
        await _handle(event)


async def _handle(event: EventT) -> None:
    """Never raises: a bad event is dead-lettered, a bad model is rejected with a reason."""
    msg = event.message
    try:
        ev = decode_training_event(event.value)
    except FltsError as exc:
        log.warning("training event dead-lettered partition=%s offset=%s error=%s", msg.partition, msg.offset, exc)
        app.metrics.training_events.labels("invalid").inc()  # not a claim: counted with training events
        await app.kafka_topics.dead_letter.send(
            key=dead_letter_key(event.key),
            value=dead_letter(event.value, event.key, exc, Coordinates(msg.topic, msg.partition, msg.offset)),
        )
        return
    app.metrics.training_events.labels(ev.status).inc()
    if ev.status != "SUCCESS":
        log.info("training event ignored status=%s run_id=%s", ev.status, ev.run_id)
        return
    identifier = ev.identifier or DEFAULT_KEY
    cached = latest_frames.get(identifier) if identifier != DEFAULT_KEY else None
    try:
        frame = decode_frame(cached) if cached is not None else None
        champion = await app.models.own_model(identifier)
        decision = await asyncio.to_thread(evaluate, ev, champion, frame, demo_prepared_frame)
    except Exception as exc:  # noqa: BLE001 - load, smoke test or backtest failed: reject, keep serving
        log.warning("model rejected identifier=%s run_id=%s error=%r", identifier, ev.run_id, exc)
        decision = Decision(identifier, model_uri_of(ev), ev.run_id, False, f"evaluation failed: {exc}")
    if decision.promoted:
        await _promote(decision)
    app.metrics.promotions.labels("promoted" if decision.promoted else "rejected").inc()
    log.info(
        "model decision identifier=%s run_id=%s promoted=%s reason=%s",
        identifier,
        ev.run_id,
        decision.promoted,
        decision.reason,
    )
    await app.kafka_topics.selected.send(key=identifier.encode(), value=decision.message(ev))


async def _promote(decision: Decision) -> None:
    """Record the champion, move the registry alias (which every worker follows), serve it here at once."""
    champions[decision.identifier.encode()] = decision.champion().model_dump(mode="json")
    s = app.settings.model
    version = await asyncio.to_thread(set_registry_alias, s.registry_prefix, s.champion_alias, decision)
    try:
        if version is None or not await app.models.follow_registry():
            await app.models.load(decision.identifier, decision.model_uri)
    except Exception:  # noqa: BLE001 - the promotion stands (table, alias) and the follow timer retries the load;
        # raising would crash the agent before the decision is announced (seen: a torch tracer error)
        log.exception("promoted model failed to load identifier=%s uri=%s", decision.identifier, decision.model_uri)


@app.timer(interval=app.settings.model.follow_interval_s)
async def follow_champions() -> None:
    """Swap in champions this worker does not serve yet: from the champions table, then the registry alias.

    Faust does not reliably replicate GlobalTable writes to other *running* workers on this
    stack (measured; faust-streaming #283), so the registry alias, moved by the promoting
    worker, is what carries a promotion to every worker without a restart.
    """
    wanted = {}
    for raw in list(champions.values()):
        champ = champion_from_table(raw)
        if champ is not None:
            wanted[champ.identifier] = (champ.model_uri, champ.run_id)
    try:
        if wanted:
            await app.models.follow(wanted)
        await app.models.load_champions(reload_default=False)  # also a default deferred by a registry outage
    except Exception:  # noqa: BLE001 - a timer that raises stops for good; retry next tick
        log.exception("champion follow failed")
