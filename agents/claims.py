"""Agent on inference-data: claim-check messages -> latest_frames (and dead letters)."""
from faust import StreamT

from flts_streams.app import app
from flts_streams.claim_processor import ClaimProcessor
from flts_streams.claims import Coordinates
from flts_streams.storage import open_store
from tables.latest_frames import latest_frames


@app.agent(app.kafka_topics.inference, concurrency=1)  # table writer: one consumer, events acked in order
async def claims(stream: StreamT) -> None:
    """Process claims in micro-batches; every event ends processed, expired or dead-lettered."""
    processor = ClaimProcessor(app.settings, open_store(app.settings), app.metrics)
    streaming = app.settings.streaming
    async for events in stream.take_events(streaming.batch_size, within=streaming.batch_timeout_s):
        for event in events:
            msg = event.message
            where = Coordinates(msg.topic, msg.partition, msg.offset)
            outcome = await processor.process(event.value, event.key, msg.headers, where)
            if outcome.frame is not None:
                # take_events leaves the *last* event current; table writes must use this
                # event's partition (RocksDB shard and changelog partition).
                stream._set_current_event(event)
                latest_frames[outcome.identifier] = outcome.frame
            elif outcome.dead_letter is not None:
                await app.kafka_topics.dead_letter.send(key=event.key, value=outcome.dead_letter)
