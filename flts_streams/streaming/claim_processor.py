"""Micro-batch claim processing for agents/claims; never raises, so no event is lost by Faust."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import numpy as np
import orjson

from flts_streams.core.backoff import backoff_s
from flts_streams.core.errors import FltsError, InvalidInput, TransientError
from flts_streams.core.metrics import Metrics
from flts_streams.core.schemas import Claim
from flts_streams.core.settings import Settings
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.spec import ModelSpec
from flts_streams.models.answers import prediction_body
from flts_streams.models.predictor import Prediction, Predictor
from flts_streams.streaming.claim_messages import (
    ClaimInput,
    ClaimOutcome,
    deadline_of,
    decode_claim,
    expired,
    log_object_key,
    result_record,
)
from flts_streams.streaming.claim_objects import ObjectLimits, frame_from_object
from flts_streams.streaming.dead_letters import DEAD_LETTER_KEY_INLINE, dead_letter, needs_spill, spill_key
from flts_streams.streaming.drift import cooled_down, detect, training_request, validation_mae
from flts_streams.streaming.frame_codec import encode_frame
from flts_streams.streaming.live_accuracy import (
    IssuedForecast,
    LiveAccuracy,
    Scored,
    decode_accuracy,
    encode_accuracy,
    issued_forecast,
)
from flts_streams.streaming.object_store import ObjectStore, allowed_bucket, validate_key
from flts_streams.streaming.target_history import (
    HistoryChain,
    TargetHistory,
    decode_history,
    encode_history,
    extend,
)

log = logging.getLogger(__name__)
# Below Faust's producer_max_request_size (1,000,000): a record the producer refuses is never built.
RECORD_MAX_BYTES = 1_000_000 - 16 * 1024
T = TypeVar("T")
A = TypeVar("A")
R = TypeVar("R")


@dataclass
class _Pending:
    """A decoded claim waiting for its object and forecast."""

    index: int
    inp: ClaimInput
    claim: Claim
    bucket: str


@dataclass
class BatchResult:
    """Outcomes in input order, plus per identifier the newest frame tail (latest_frames) and its target's
    extended recent values (target_history; only for models that read history), and its issued forecasts
    scored against the actuals the batch brought (forecast_accuracy)."""

    outcomes: list[ClaimOutcome]
    frames: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # identifier -> (input index, frame)
    histories: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # identifier -> (input index, history)
    accuracy: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # identifier -> (input index, scores)
    training_requests: list[tuple[str, bytes]] = field(default_factory=list)  # (identifier, message) of drift


def _no_history(identifier: str) -> bytes | None:
    return None


class ClaimProcessor:
    """Decode -> deadline -> fetch once per object -> prepare -> forecast once per (identifier, object) -> log."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        metrics: Metrics,
        predictor: Predictor,
        max_record_bytes: int = RECORD_MAX_BYTES,
        history_of: Callable[[str], bytes | None] = _no_history,
        accuracy_of: Callable[[str], bytes | None] | None = None,
        held_forecasts: Callable[[str], list[IssuedForecast]] = lambda identifier: [],
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.predictor = predictor
        self.max_record_bytes = max_record_bytes  # results and table values above this are dead letters
        self.history_of = history_of  # identifier -> its target_history value (the agent reads the table)
        self.accuracy_of = accuracy_of  # identifier -> its forecast_accuracy value; None: live accuracy off
        self.held_forecasts = held_forecasts  # identifier -> forecasts of GET /predict/{id} to remember (taken)

    async def process_batch(self, inputs: Sequence[ClaimInput]) -> BatchResult:
        """Process a micro-batch; every input gets exactly one outcome, even if a step fails unexpectedly."""
        try:
            result = await self._process(inputs)
        except Exception as exc:  # noqa: BLE001 - the agent boundary: an escaped error would lose the batch
            log.exception("claim batch failed size=%d; dead-lettering it", len(inputs))
            result = BatchResult([self._dead(inp, exc) for inp in inputs])
        await self._spill(result.outcomes)
        return result

    async def _spill(self, outcomes: Sequence[ClaimOutcome]) -> None:
        """Store the originals of dead letters too large to carry them whole (before anything is committed)."""
        bucket = self.settings.storage.bucket
        for outcome in outcomes:
            if outcome.spill is None:
                continue
            key, value, original_key = outcome.spill
            objects = [(key, value)]
            if len(original_key) > DEAD_LETTER_KEY_INLINE:
                objects.append((_key_object(key), original_key))
            for name, data in objects:
                try:
                    await self._retry(partial(asyncio.to_thread, self.store.put, bucket, name, data), f"put {name}")
                except FltsError:  # e.g. the bucket does not exist: the dead letter keeps its truncated copy
                    log.exception("dead-letter original not stored bucket=%s key=%s", bucket, name)

    async def _process(self, inputs: Sequence[ClaimInput]) -> BatchResult:
        started = time.perf_counter()
        outcomes: list[ClaimOutcome | None] = [None] * len(inputs)
        pending = []
        for i, inp in enumerate(inputs):
            item = self._admit(i, inp)
            if isinstance(item, ClaimOutcome):
                outcomes[i] = item
            else:
                pending.append(item)
        result = BatchResult([])
        frames = await self._frames(pending, outcomes)
        chains: dict[str, HistoryChain] = {}  # identifier -> its kept series and this batch's frames
        predictions = await self._forecasts(pending, frames, outcomes, chains)
        done = [p for p in pending if outcomes[p.index] is None]
        kept = self._table_frames(done, frames, predictions, outcomes)
        await self._results([p for p in done if outcomes[p.index] is None], predictions, outcomes)
        processed = [p for p in done if outcomes[p.index] is not None and outcomes[p.index].status == "processed"]  # type: ignore[union-attr]
        for p in processed:
            result.frames[p.claim.identifier] = (p.index, kept[_ref(p)])
        result.histories = self._histories(processed, frames, predictions, chains)
        if self.accuracy_of is not None:
            result.accuracy, result.training_requests = self._live_accuracy(processed, frames, predictions)
        result.outcomes = [o for o in outcomes if o is not None]
        assert len(result.outcomes) == len(inputs), "every claim needs exactly one outcome"
        self.metrics.claim_duration.observe(time.perf_counter() - started)
        self.metrics.claim_batch_size.observe(len(inputs))
        return result

    def _admit(self, i: int, inp: ClaimInput) -> _Pending | ClaimOutcome:
        """Decode, check deadline, bucket and key; the claim continues or ends here."""
        try:
            claim = decode_claim(inp.value)
            bucket = allowed_bucket(self.settings, claim.bucket)
            validate_key(claim.object_key)  # refused before any read
        except FltsError as exc:
            return self._dead(inp, exc)
        if expired(deadline_of(inp.headers)):
            self.metrics.claims.labels("expired").inc()
            log.info(
                "claim expired identifier=%s partition=%s offset=%s",
                claim.identifier,
                inp.where.partition,
                inp.where.offset,
            )
            return ClaimOutcome("expired", claim.identifier)
        wanted = claim.identifier.encode()
        if inp.key != wanted:
            # Keyed by identifier, a claim lands on the partition that owns the identifier's table entry.
            self.metrics.claims.labels("repartitioned").inc()
            return ClaimOutcome("repartitioned", claim.identifier, forward_key=wanted)
        return _Pending(i, inp, claim, bucket)

    def _dead(self, inp: ClaimInput, exc: BaseException) -> ClaimOutcome:
        self.metrics.claims.labels("dead_lettered").inc()
        level = logging.WARNING if isinstance(exc, FltsError) else logging.ERROR
        w = inp.where
        log.log(
            level,
            "claim dead-lettered topic=%s partition=%s offset=%s error=%.500r",
            w.topic,
            w.partition,
            w.offset,
            exc,
        )
        if not needs_spill(inp.value, inp.key):
            return ClaimOutcome("dead_lettered", dead_letter=dead_letter(inp.value, inp.key, exc, w))
        key = spill_key(self.settings.streaming.dead_letter_prefix, w)
        original_key = inp.key or b""
        where: dict[str, str | None] = {
            "bucket": self.settings.storage.bucket,
            "value_object": key,
            "key_object": _key_object(key) if len(original_key) > DEAD_LETTER_KEY_INLINE else None,
        }
        return ClaimOutcome(
            "dead_lettered",
            dead_letter=dead_letter(inp.value, inp.key, exc, w, where),
            spill=(key, inp.value or b"", original_key),
        )

    async def _frames(
        self, pending: list[_Pending], outcomes: list[ClaimOutcome | None]
    ) -> dict[tuple[str, str], PreparedFrame | Exception]:
        """Fetch and prepare each distinct object once; failures dead-letter every claim that named it."""
        refs = list(dict.fromkeys((p.bucket, p.claim.object_key) for p in pending))
        loaded = await self._in_threads(refs, lambda ref: self._read_frame(*ref), "get")
        frames = dict(zip(refs, loaded))
        for p in pending:
            frame = frames[(p.bucket, p.claim.object_key)]
            if isinstance(frame, Exception):
                outcomes[p.index] = self._dead(p.inp, frame)
        return frames

    def _read_frame(self, bucket: str, key: str) -> PreparedFrame:
        """An object's frame (in a thread); only the read can fail transiently, so a retry repeats little."""
        s = self.settings.streaming
        data = self.store.get(bucket, key, s.object_max_bytes)
        return frame_from_object(data, key, (), ObjectLimits(s.object_max_rows, s.object_max_columns))

    async def _forecasts(
        self,
        pending: list[_Pending],
        frames: dict,
        outcomes: list[ClaimOutcome | None],
        chains: dict[str, HistoryChain],
    ) -> dict[tuple[str, str, str], Prediction]:
        """One forecast per (identifier, bucket, object), all submitted together so they share forwards."""
        jobs: dict[tuple[str, str, str], Awaitable[Prediction]] = {}
        for p in pending:
            if outcomes[p.index] is None:
                ref = (p.claim.identifier, p.bucket, p.claim.object_key)
                if ref not in jobs:
                    identifier = p.claim.identifier
                    if identifier not in chains:
                        chains[identifier] = HistoryChain(self._kept_history(identifier))
                    count = chains[identifier].append(frames[ref[1:]])
                    jobs[ref] = self._forecast(identifier, frames[ref[1:]], chains[identifier], count)
        answers = await asyncio.gather(*jobs.values(), return_exceptions=True)
        predictions = dict(zip(jobs, answers))
        for p in pending:
            answer = predictions.get((p.claim.identifier, p.bucket, p.claim.object_key))
            if isinstance(answer, BaseException) and outcomes[p.index] is None:
                outcomes[p.index] = self._dead(p.inp, answer)
        return {k: v for k, v in predictions.items() if not isinstance(v, BaseException)}

    async def _forecast(self, identifier: str, frame: PreparedFrame, chain: HistoryChain, count: int) -> Prediction:
        """One forecast; a transient failure (models still loading, registry down) is retried, never dead-lettered.

        Its history is the identifier's kept series extended by the frames of its earlier claims in this
        micro-batch, then by its own (``count`` frames of ``chain``): in a burst, the third claim of a site
        sees the first two.
        """
        last_ns = int(frame.timestamps.astype("datetime64[ns]").view(np.int64)[-1])

        def history(spec: ModelSpec) -> np.ndarray | None:
            series = chain.through(count, spec.targets[0], spec.history_rows)
            assert series is not None  # extended by one frame at least
            return series.values if series.last_ns == last_ns else None  # an older object: its own rows only

        return await self._retry(
            lambda: self.predictor.predict(
                identifier, lambda _spec: frame, None, source="claims", quantiles="all", history=history
            ),
            f"forecast {identifier}",
        )

    def _kept_history(self, identifier: str) -> TargetHistory | None:
        """The identifier's target_history value, None when absent or unreadable (then the frame alone counts)."""
        payload = self.history_of(identifier)
        if payload is None:
            return None
        try:
            return decode_history(payload)
        except (InvalidInput, struct.error):
            log.warning("unreadable target_history value ignored identifier=%s", identifier)
            return None

    def _histories(
        self, processed: list[_Pending], frames: dict, predictions: dict, chains: dict[str, HistoryChain]
    ) -> dict[str, tuple[int, bytes]]:
        """target_history values: each identifier's kept series extended by its processed frames, in input order."""
        extended: dict[str, tuple[int, TargetHistory | None]] = {}
        for p in processed:
            ref = _ref(p)
            spec = predictions[ref].model.forecaster.spec
            if not spec.history_days:
                continue
            identifier = p.claim.identifier
            kept = extended[identifier][1] if identifier in extended else chains[identifier].kept  # decoded once
            extended[identifier] = (p.index, extend(kept, frames[ref[1:]], spec.targets[0], spec.history_rows))
        return {k: (i, encode_history(h)) for k, (i, h) in extended.items() if h is not None}

    def _live_accuracy(
        self, processed: list[_Pending], frames: dict, predictions: dict
    ) -> tuple[dict[str, tuple[int, bytes]], list[tuple[str, bytes]]]:
        """_accuracy, or nothing for this batch if it fails: scoring never costs a claim its result."""
        try:
            return self._accuracy(processed, frames, predictions)
        except Exception:  # noqa: BLE001 - a side line of the claims path; the batch's results stand
            log.exception("live accuracy skipped for a batch size=%d", len(processed))
            return {}, []

    def _accuracy(
        self, processed: list[_Pending], frames: dict, predictions: dict
    ) -> tuple[dict[str, tuple[int, bytes]], list[tuple[str, bytes]]]:
        """forecast_accuracy values: per identifier, earlier forecasts scored by each frame, then its forecast kept;
        and the training requests of identifiers whose live accuracy drifted.

        In input order, so a burst's later claims score the forecasts of its earlier ones.
        """
        books: dict[str, tuple[int, LiveAccuracy]] = {}
        served: dict[str, Prediction] = {}  # identifier -> its last forecast in the batch (the model judged)
        keep = self.settings.accuracy.forecasts_kept
        done: set[tuple[str, str, str]] = set()
        for p in processed:
            ref = _ref(p)
            if ref in done:
                continue  # the same object again: no new actuals, the same forecast
            done.add(ref)
            prediction: Prediction = predictions[ref]
            frame: PreparedFrame = frames[ref[1:]]
            targets = prediction.forecast.targets
            if not set(targets) <= set(frame.columns):
                continue  # nothing to score with, and no actuals to issue from
            identifier = p.claim.identifier
            book = books[identifier][1] if identifier in books else self._first_book(identifier, targets, keep)
            if book.targets != targets:
                book = LiveAccuracy(targets)  # a model of other targets: start afresh
            stamps = frame.timestamps.astype("datetime64[ns]").view(np.int64)
            actuals = np.column_stack([frame.column(t) for t in targets]).astype(np.float32)
            self._count_scores(book.score(stamps, actuals))
            run_id = prediction.model.run_id
            book.issue(issued_forecast(prediction.forecast, run_id, int(stamps[-1]), actuals[-1]), keep)
            books[identifier] = (p.index, book)
            served[identifier] = prediction
        requests = [self._drift(identifier, book, served[identifier]) for identifier, (_, book) in books.items()]
        return (
            {k: (i, encode_accuracy(book)) for k, (i, book) in books.items()},
            [r for r in requests if r is not None],
        )

    def _drift(self, identifier: str, book: LiveAccuracy, prediction: Prediction) -> tuple[str, bytes] | None:
        """A training request when the serving model's live accuracy drifted and the cool-down has passed."""
        rule = self.settings.accuracy
        run_id = prediction.model.run_id
        found = detect(book, run_id, rule, validation_mae(prediction.model.forecaster.spec))
        now = time.time()
        if found is None or not cooled_down(book, rule, now):
            return None
        book.requested_at = now
        self.metrics.training_requests.labels(found.kind).inc()
        log.warning(
            "forecast drift; retraining requested identifier=%s run_id=%s reason=%s", identifier, run_id, found.reason
        )
        return identifier, json.dumps(training_request(identifier, run_id, found, now)).encode()

    def _first_book(self, identifier: str, targets: tuple[str, ...], keep: int) -> LiveAccuracy:
        """The identifier's book as the batch finds it: kept in the table (or new), plus the forecasts answered
        to GET /predict/{id} since its last claim."""
        book = self._kept_accuracy(identifier) or LiveAccuracy(targets)
        for held in self.held_forecasts(identifier):
            if held.values.shape[1] == len(book.targets):
                book.issue(held, keep, replace=False)
        return book

    def _kept_accuracy(self, identifier: str) -> LiveAccuracy | None:
        """The identifier's forecast_accuracy value, None when absent or unreadable (then scoring starts afresh)."""
        assert self.accuracy_of is not None
        payload = self.accuracy_of(identifier)
        if payload is None:
            return None
        try:
            return decode_accuracy(payload)
        except InvalidInput:
            log.warning("unreadable forecast_accuracy value replaced identifier=%s", identifier)
            return None

    def _count_scores(self, scored: list[Scored]) -> None:
        """Prometheus counters of live accuracy (labels: model run, horizon bucket)."""
        m = self.metrics
        for s in scored:
            labels = (s.run_id, s.bucket)
            m.live_steps.labels(*labels).inc(s.steps)
            m.live_abs_error.labels(*labels).inc(s.abs_error)
            m.live_persistence_abs_error.labels(*labels).inc(s.persistence_abs_error)
            if s.with_interval:
                m.live_interval_steps.labels(*labels).inc(s.with_interval)
                m.live_interval_hits.labels(*labels).inc(s.inside)

    def _table_frames(
        self, done: list[_Pending], frames: dict, predictions: dict, outcomes: list[ClaimOutcome | None]
    ) -> dict[tuple[str, str, str], bytes]:
        """latest_frames values: the newest rows of the model's features only, each below the record limit.

        A frame that cannot be kept dead-letters its claims (a 1.6 MB value of 200 extra columns crashed
        Faust's changelog producer and the worker with it).
        """
        kept: dict[tuple[str, str, str], bytes] = {}
        for p in done:
            ref = _ref(p)
            if ref not in kept:
                spec = predictions[ref].model.forecaster.spec
                wanted = tuple(dict.fromkeys((*spec.features, *spec.targets)))
                frame: PreparedFrame = frames[ref[1:]]
                kept[ref] = encode_frame(frame.only(wanted).tail(self.settings.streaming.frame_max_rows))
            if len(kept[ref]) > self.max_record_bytes:
                outcomes[p.index] = self._dead(
                    p.inp,
                    InvalidInput(
                        f"the frame kept for {p.claim.identifier!r} would be {len(kept[ref])} bytes, above the "
                        f"{self.max_record_bytes}-byte record limit; lower FLTS_STREAMING__FRAME_MAX_ROWS"
                    ),
                )
        return kept

    async def _results(self, done: list[_Pending], predictions: dict, outcomes: list[ClaimOutcome | None]) -> None:
        """Build result messages and write one prediction-log object per identifier (before any commit)."""
        now = time.time()
        per_identifier: dict[str, list[tuple[_Pending, bytes]]] = {}
        for p in done:
            prediction = predictions[(p.claim.identifier, p.bucket, p.claim.object_key)]
            body = prediction_body(p.claim.identifier, prediction, cached=False)
            # orjson: the stdlib encoder was 5% of a claim burst's CPU (the forecasts' floats)
            record = orjson.dumps(result_record(p.claim, p.inp.where, p.inp.published_at, body, now))
            if len(record) > self.max_record_bytes:  # bounded claim fields make this unreachable; a guard all the same
                outcomes[p.index] = self._dead(
                    p.inp,
                    InvalidInput(
                        f"the result would be {len(record)} bytes, above the {self.max_record_bytes}-byte record limit"
                    ),
                )
                continue
            per_identifier.setdefault(p.claim.identifier, []).append((p, record))
            self.metrics.claim_latency.observe(max(0.0, now - p.inp.published_at))
        logs = []
        for identifier, items in per_identifier.items():
            first = items[0][0].inp
            key = log_object_key(self.settings.streaming.log_prefix, identifier, first.where, first.published_at)
            logs.append((key, b"\n".join(r for _, r in items) + b"\n"))
        bucket = self.settings.storage.bucket
        failures = await self._in_threads(logs, lambda log_: self.store.put(bucket, *log_), "put")  # before any commit
        for failure in failures:
            if failure is not None and not isinstance(failure, FltsError):
                raise failure  # not the store refusing: the batch's catch-all dead-letters it, as before
        for (identifier, items), failure in zip(per_identifier.items(), failures):
            for p, record in items:
                if failure is not None:
                    outcomes[p.index] = self._dead(p.inp, failure)
                    continue
                outcomes[p.index] = ClaimOutcome("processed", identifier, result=record)
                self.metrics.claims.labels("processed").inc()

    async def _in_threads(self, items: Sequence[A], work: Callable[[A], R], what: str) -> list[R | Exception]:
        """``work`` on every item, in at most ``Settings.object_concurrency()`` thread calls, each a contiguous chunk;
        each item's result or exception. Transient failures are retried (all that are left, in chunks again) until
        they pass, so an outage holds the batch and costs no claim.

        Why chunks, not a thread call per object: each call is a trip through the event loop and its GIL
        hand-offs; with 256 distinct objects per micro-batch, 8 threads contending for the GIL with the loop
        made reads and writes ~2.8x slower than alone (docs/BENCHMARKS.md). Chunks keep as many requests in
        flight as before (S3's latency). After a TransientError the rest of its chunk is not tried this round.
        """
        results: list[R | Exception] = [_NotTried()] * len(items)  # each replaced in the first round
        todo = list(range(len(items)))
        attempt = 0
        while todo:
            size = -(-len(todo) // self.settings.object_concurrency())
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
            done = await asyncio.gather(*(asyncio.to_thread(_each, work, [items[j] for j in c]) for c in chunks))
            for chunk, outs in zip(chunks, done):
                for j, out in zip(chunk, outs):
                    results[j] = out
            todo = [j for j in todo if isinstance(results[j], TransientError)]
            if todo:
                attempt += 1
                failed = [results[j] for j in todo if not isinstance(results[j], _NotTried)]
                await self._backoff(attempt, f"{what} of {len(todo)} objects", failed[0], len(failed))
        return results

    async def _retry(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Retry transient failures (object store, model registry) with capped exponential backoff, never giving up."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except TransientError as exc:
                await self._backoff(attempt, what, exc)

    async def _backoff(self, attempt: int, what: str, error: object, failures: int = 1) -> None:
        """Count, log and wait out ``failures`` transient failures of one attempt."""
        self.metrics.claims.labels("retried").inc(failures)
        log.warning("transient error, retrying attempt=%d op=%s error=%s", attempt, what, error)
        await asyncio.sleep(backoff_s(self.settings.streaming.retry_backoff_s, attempt))


class _NotTried(TransientError):
    """An item of a chunk after one that failed transiently: tried again with the failed ones."""


def _each(work: Callable[[A], R], chunk: Sequence[A]) -> list[R | Exception]:
    """``work`` on each item in turn (in a thread): its result or exception; after a TransientError, _NotTried."""
    out: list[R | Exception] = []
    for item in chunk:
        if out and isinstance(out[-1], TransientError):
            out.append(_NotTried("not tried: an earlier object of its chunk failed transiently"))
            continue
        try:
            out.append(work(item))
        except Exception as exc:  # noqa: BLE001 - sorted per item on the event loop (dead letter, retry, raise)
            out.append(exc)
    return out


def _ref(p: _Pending) -> tuple[str, str, str]:
    """(identifier, bucket, object key): one forecast and one table frame each."""
    return (p.claim.identifier, p.bucket, p.claim.object_key)


def _key_object(value_object: str) -> str:
    """Object key of a dead letter's full original message key, beside its value."""
    return value_object.rsplit(".", 1)[0] + ".key"
