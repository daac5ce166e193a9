"""Agent on inference-data: claim-check messages -> forecasts on inference-results, latest_frames, dead letters."""

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust import StreamT
from faust.streams import _current_event  # the context var tables read the partition from
from faust.types import EventT

from flts_streams.app import app
from flts_streams.streaming.claim_messages import ClaimInput, Coordinates
from flts_streams.streaming.claim_processor import ClaimProcessor
from flts_streams.streaming.object_store import open_store
from flts_streams.streaming.result_delivery import Delivery
from tables.forecast_accuracy import forecast_accuracy
from tables.latest_frames import latest_frames
from tables.target_history import target_history

RECORD_MARGIN_BYTES = 16 * 1024  # below the producer's max request size: headers and record framing


@contextmanager
def event_context(event: EventT) -> Iterator[None]:
    """Make ``event`` current for table writes (RocksDB shard and changelog partition) in this task only.

    take_events leaves the batch's *last* event current, so a write for an earlier claim would
    land on the wrong partition. ``stream._set_current_event`` must not be used for this: it also
    sets the stream attribute that take_events' background filler reads, which then records this
    old event in place of the newly arrived one — one claim processed twice, one never (measured).
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _input(event: EventT) -> ClaimInput:
    msg = event.message
    return ClaimInput(
        event.value, event.key, msg.headers, Coordinates(msg.topic, msg.partition, msg.offset), msg.timestamp
    )


@app.agent(app.kafka_topics.inference, concurrency=1)  # table writer: one consumer, events acked in order
async def claims(stream: StreamT) -> None:
    """Process claims in micro-batches; every event ends processed, expired, repartitioned or dead-lettered."""
    processor = ClaimProcessor(
        app.settings,
        open_store(app.settings),
        app.metrics,
        app.predictor,
        max_record_bytes=app.conf.producer_max_request_size - RECORD_MARGIN_BYTES,
        history_of=target_history.get,
        accuracy_of=forecast_accuracy.get if app.settings.accuracy.enabled else None,
        held_forecasts=app.held_forecasts.take,
    )
    delivery = Delivery(
        app.kafka_topics.results.send,
        app.kafka_topics.dead_letter.send,
        app.kafka_topics.inference.send,
        app.metrics,
        app.settings.streaming.retry_backoff_s,
    )
    # Take no claim before the initial model load is done: a claim resolved in between found no
    # model and was dead-lettered as NoModel (32 of 3,000 in a restart with a backlog).
    await app.models.initial_load_done.wait()
    streaming = app.settings.streaming
    # take_events is faust-streaming's Stream method, missing from its StreamT protocol.
    async for events in stream.take_events(streaming.batch_size, within=streaming.batch_timeout_s):  # type: ignore[attr-defined]
        inputs = [_input(e) for e in events]
        batch = await processor.process_batch(inputs)
        for inp, outcome in zip(inputs, batch.outcomes):
            # Sends are flushed before Faust commits, so a committed claim always has its message out.
            await delivery.deliver(inp, outcome)
        for identifier, request in batch.training_requests:  # out before the commit, like the results
            await app.kafka_topics.training_requests.send(key=identifier.encode(), value=request)
        for identifier, (index, frame) in batch.frames.items():
            with event_context(events[index]):
                latest_frames[identifier] = frame
        for identifier, (index, history) in batch.histories.items():
            with event_context(events[index]):
                target_history[identifier] = history
        for identifier, (index, scores) in batch.accuracy.items():
            with event_context(events[index]):
                forecast_accuracy[identifier] = scores
