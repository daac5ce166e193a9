"""POST /predict (payload or cached) and GET /predict/{identifier} (cached, table-routed)."""

import logging
from typing import cast

import aiohttp
import numpy as np
import orjson
from aiohttp import web
from faust.web import Request, Response

from flts_streams.app import app
from flts_streams.core import errors as e
from flts_streams.forecasting.frame import PreparedFrame
from flts_streams.forecasting.spec import ModelSpec
from flts_streams.models.answers import prediction_json
from flts_streams.models.predictor import FrameSource, HistorySource, Prediction
from flts_streams.serving.body_budget import read_within
from flts_streams.serving.predict_request import (
    check_body_encoding,
    horizon_query,
    parse_predict,
    quantiles_query,
    request_frame,
)
from flts_streams.streaming.frame_codec import decode_frame
from flts_streams.streaming.live_accuracy import issued_from_frame
from flts_streams.streaming.target_history import decode_history
from tables.latest_frames import latest_frames
from tables.target_history import target_history
from web.direct_view import DirectView
from web.paths import PREDICT_PATH

log = logging.getLogger(__name__)
DEADLINE_HEADER = "X-Deadline-Ms"  # optional per-request budget in milliseconds


async def _read_body(request: web.Request) -> bytes:
    check_body_encoding(request.headers.get("Content-Encoding"))
    serving = app.settings.serving
    limit = serving.max_body_bytes
    if (request.content_length or 0) > limit:
        raise e.RequestTooLarge(f"request body of {request.content_length} bytes exceeds the {limit}-byte limit")
    if not request.can_read_body:
        return b""
    # A chunked body has no declared size: it may grow to the limit.
    if request.content.is_eof():  # the usual small body: all here already, nothing to wait for or budget
        return await request.read()
    with app.body_budget.reserve(request.content_length or limit):
        return await read_within(request.read(), serving.body_timeout_s)


def _budget(request: Request) -> float:
    raw = request.headers.get(DEADLINE_HEADER)
    default = app.settings.serving.request_timeout_s
    try:
        return min(default, max(0.0, float(raw) / 1000.0)) if raw else default
    except ValueError:
        return default


def _json(body: bytes) -> Response:
    """A 200 answer of JSON serialised already (the headers Faust's View.json sends)."""
    # Faust's aiohttp driver exchanges aiohttp's Request and Response with views; faust types them
    # as its own abstract Request and Response, hence the casts here and in the views.
    return cast(Response, web.Response(body=body, content_type="application/json", charset="utf-8"))


async def _forecast(
    identifier: str,
    frame_for: FrameSource,
    horizon: int | None,
    *,
    cached: bool,
    budget: float,
    quantiles: tuple[float, ...] | None = None,
) -> bytes:
    seen: list[PreparedFrame] | None = None  # a list only when remembering: nothing more on POST /predict
    if cached and app.settings.accuracy.remember_cached:
        seen = []
        frame_for = _seeing(frame_for, seen)  # the origin and last actuals of the forecast, to remember it
    with app.admission.admit():
        try:
            prediction = await app.predictor.predict(
                identifier,
                frame_for,
                horizon,
                timeout=budget,
                quantiles=quantiles,
                history=_cached_history(identifier) if cached else None,
            )
        except TimeoutError as exc:
            app.metrics.rejected.labels("deadline").inc()
            raise e.DeadlineExceeded(
                f"no forecast within the {budget:g}s deadline; retry or raise X-Deadline-Ms"
            ) from exc
    if seen:
        _hold(identifier, prediction, seen[-1])
    return prediction_json(identifier, prediction, cached=cached)


def _seeing(frame_for: FrameSource, seen: list[PreparedFrame]) -> FrameSource:
    """``frame_for`` that also appends each frame it hands out to ``seen``."""

    def load(spec: ModelSpec) -> PreparedFrame:
        frame = frame_for(spec)
        seen.append(frame)
        return frame

    return load


def _hold(identifier: str, prediction: Prediction, frame: PreparedFrame) -> None:
    """Hold a cached forecast for the identifier's next claim to remember and score (FLTS_ACCURACY__REMEMBER_CACHED)."""
    issued = issued_from_frame(prediction.forecast, prediction.model.run_id, frame)
    if issued is not None:
        app.held_forecasts.add(identifier, issued)


def _cached_frame(identifier: str) -> FrameSource:
    def load(_spec: ModelSpec) -> PreparedFrame:
        payload = latest_frames.get(identifier)
        if payload is None:
            raise e.UnknownIdentifier(
                f"nothing cached for identifier {identifier!r}: send data, or publish a claim for it first"
            )
        return decode_frame(payload)

    return load


def _cached_history(identifier: str) -> HistorySource:
    """The identifier's recent values of the model's first target kept from its claims (tables/target_history.py)."""

    def load(spec: ModelSpec) -> np.ndarray | None:
        payload = target_history.get(identifier)
        if payload is None:
            return None
        try:
            kept = decode_history(payload)
        except e.InvalidInput:  # an unreadable value: forecast from the cached frame alone, as claims do
            log.warning("unreadable target_history value ignored identifier=%s", identifier)
            return None
        return kept.values if kept.column == spec.targets[0] else None

    return load


async def _forward_cached(
    identifier: str, horizon: int | None, budget: float, quantiles: tuple[float, ...] | None
) -> bytes:
    """Ask the worker that owns ``identifier`` (routing drops bodies, so use the GET route); its answer as is."""
    owner = app.router.key_store(latest_frames.name, identifier)
    if owner == app.conf.canonical_url:
        return await _forecast(
            identifier, _cached_frame(identifier), horizon, cached=True, budget=budget, quantiles=quantiles
        )
    query = {"inference_length": str(horizon)} if horizon else {}
    if quantiles:
        query["quantiles"] = ",".join(f"{q:g}" for q in quantiles)
    url = owner.with_path(f"/predict/{identifier}").with_query(query)
    timeout = aiohttp.ClientTimeout(total=budget)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            body = await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise e.TransientError(f"owner worker {owner} of {identifier!r} did not answer: {exc!r}") from exc
    if resp.status != 200:
        raise _remote_error(resp.status)(_detail(body))
    return body


def _detail(body: bytes) -> str:
    """The ``detail`` of an owner's error answer (its text when that is not our JSON)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")
    return str(answer.get("detail", answer)) if isinstance(answer, dict) else str(answer)


def _remote_error(status: int) -> type[e.FltsError]:
    """The owner's error status, re-raised here so the caller sees the same status and detail."""
    known = {
        400: e.InvalidInput,
        404: e.UnknownIdentifier,
        429: e.Overloaded,
        503: e.Unavailable,
        504: e.DeadlineExceeded,
    }
    return known.get(status, e.TransientError)


@app.page(PREDICT_PATH)
class Predict(DirectView):
    """Forecast from posted data, or from the identifier's cached frame when no data is sent."""

    async def post(self, request: Request) -> Response:
        http = cast(web.Request, request)
        body = await _read_body(http)  # capacity was checked already (SHED_EARLY)
        req = parse_predict(body, http.content_type, request.query, app.settings.serving)
        identifier = req.identifier or app.settings.serving.default_identifier
        budget = _budget(request)
        if not req.has_data:
            return _json(await _forward_cached(identifier, req.inference_length, budget, req.quantiles))

        return _json(
            await _forecast(
                identifier,
                lambda spec: request_frame(req, spec),
                req.inference_length,
                cached=False,
                budget=budget,
                quantiles=req.quantiles,
            )
        )


@app.page("/predict/{identifier}")
class PredictCached(DirectView):
    """Forecast from latest_frames[identifier] on whichever worker owns it."""

    @app.table_route(table=latest_frames, match_info="identifier")  # type: ignore[arg-type]  # faust's hint omits match_info arguments
    async def get(self, request: Request, identifier: str) -> Response:
        horizon = horizon_query(request.query)
        quantiles = quantiles_query(request.query["quantiles"]) if "quantiles" in request.query else None
        return _json(
            await _forecast(
                identifier,
                _cached_frame(identifier),
                horizon,
                cached=True,
                budget=_budget(request),
                quantiles=quantiles,
            )
        )
