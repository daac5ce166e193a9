"""The aiohttp middleware every request passes: errors to JSON ``detail`` bodies, early /predict shedding, metrics."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from flts_streams.app import app
from flts_streams.core import errors as e
from web.paths import SHED_EARLY

log = logging.getLogger(__name__)

STATUS: tuple[tuple[type[e.FltsError], int], ...] = (
    (e.RequestTooLarge, 413),
    (e.BodyTimeout, 408),
    (e.UnsupportedMediaType, 415),
    (e.SchemaError, 422),
    (e.InvalidInput, 400),
    (e.NotFound, 404),
    (e.Unauthorized, 401),
    (e.Overloaded, 429),
    (e.DeadlineExceeded, 504),
    (e.Unavailable, 503),
)


def status_for(exc: e.FltsError) -> int:
    """HTTP status of a domain error (500 for an unmapped one)."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def json_error(status: int, detail: str, headers: dict[str, str] | None = None, **extra: str) -> web.Response:
    """A JSON error response with a ``detail``."""
    # A bytes body: a str one goes through aiohttp's payload registry, which made each 429 ~8% dearer.
    return web.Response(
        status=status, body=orjson.dumps({"detail": detail, **extra}), content_type="application/json", headers=headers
    )


def _error_response(exc: e.FltsError, status: int) -> web.Response:
    headers = {"Retry-After": str(app.settings.serving.retry_after_s)} if status == 429 else None
    return json_error(status, str(exc), headers)


def _route(request: web.Request) -> str:
    info = request.match_info
    return info.route.resource.canonical if info.route.resource is not None else "unmatched"


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Map FltsError and aiohttp errors to JSON; unexpected errors to 500 with a logged request id."""
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        if (request.method, request.path) in SHED_EARLY and app.admission.at_capacity():
            # Before Faust's view dispatch, and without raising: under overload most requests are
            # 429s, and what each costs is event-loop time the admitted requests wait for.
            response = _error_response(app.admission.overloaded(), 429)
        else:
            response = await handler(request)
    except e.FltsError as exc:
        response = _error_response(exc, status_for(exc))
    except (
        ConnectionResetError
    ):  # the client went away mid-body (aiohttp's ClientConnectionResetError too): not our error
        log.info("client disconnected before its request was read method=%s path=%s", request.method, request.path)
        response = json_error(400, "the client closed the connection before sending the whole body")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {
            404: f"no route {request.method} {request.path}; see /openapi.json",
            405: f"method {request.method} not allowed on {request.path}",
            413: f"request body larger than {app.settings.serving.max_body_bytes} bytes",
        }.get(exc.status, exc.reason)
        response = json_error(exc.status, detail)
    except Exception:  # noqa: BLE001 - last resort: a 500 the operator can find in the log
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]  # only errors need one
        log.exception("unhandled error request_id=%s method=%s path=%s", request_id, request.method, request.path)
        response = json_error(500, f"internal error; quote request id {request_id}", request_id=request_id)
    app.metrics.observe_http(_route(request), str(response.status), time.perf_counter() - started)
    return response


app.http_middlewares.append(error_middleware)
