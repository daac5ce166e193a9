"""The error middleware on a bare aiohttp app (aiohttp's test client): shedding, status mapping, 500s."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flts_streams.app import app
from flts_streams.core import errors as e
from web.middleware import STATUS, error_middleware

Check = Callable[[TestClient], Awaitable[None]]


def _sample(name: str, labels: dict[str, str]) -> float:
    return app.metrics.registry.get_sample_value(name, labels) or 0.0


def _serve(check: Check, handlers: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> list[str]:
    """Run ``check`` against an app of ``handlers`` (path -> POST handler) behind the error middleware."""
    called: list[str] = []

    def recording(path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            called.append(path)
            return await handler(request)

        return wrapped

    async def run() -> None:
        application = web.Application(middlewares=[error_middleware])
        for path, handler in handlers.items():
            application.router.add_post(path, recording(path, handler))
        async with TestClient(TestServer(application)) as client:
            await check(client)

    asyncio.run(run())
    return called


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "SUCCESS"})


def test_predict_at_capacity_is_answered_429_before_its_handler_runs():
    before = _sample("flts_rejected_requests_total", {"reason": "overloaded"})
    http_before = _sample("flts_http_requests_total", {"route": "/predict", "status": "429"})

    async def check(client: TestClient) -> None:
        resp = await client.post("/predict", data=b"{}")
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) == app.settings.serving.retry_after_s
        assert resp.content_type == "application/json"
        assert f"more than {app.settings.serving.max_in_flight} predictions in flight" in (await resp.json())["detail"]

    with ExitStack() as slots:
        for _ in range(app.settings.serving.max_in_flight):
            slots.enter_context(app.admission.admit())
        assert app.admission.at_capacity()
        called = _serve(check, {"/predict": _ok})
    assert called == []  # shed without dispatching the view (or reading the body)
    assert not app.admission.at_capacity()
    assert _sample("flts_rejected_requests_total", {"reason": "overloaded"}) == before + 1
    assert _sample("flts_http_requests_total", {"route": "/predict", "status": "429"}) == http_before + 1


def test_predict_below_capacity_reaches_its_handler():
    async def check(client: TestClient) -> None:
        resp = await client.post("/predict", data=b"{}")
        assert resp.status == 200 and (await resp.json()) == {"status": "SUCCESS"}

    with app.admission.admit():  # one slot taken, plenty left
        assert _serve(check, {"/predict": _ok}) == ["/predict"]


@pytest.mark.parametrize(("error", "status"), [(cls, status) for cls, status in STATUS])
def test_domain_errors_map_to_their_status_with_the_message_as_detail(error: type[e.FltsError], status: int):
    async def fail(request: web.Request) -> web.Response:
        raise error(f"what went wrong with {error.__name__}")

    async def check(client: TestClient) -> None:
        resp = await client.post("/fail")
        assert resp.status == status
        assert (await resp.json()) == {"detail": f"what went wrong with {error.__name__}"}
        assert ("Retry-After" in resp.headers) == (status == 429)

    _serve(check, {"/fail": fail})


def test_unexpected_errors_are_500_with_a_request_id_that_is_in_the_log(caplog: pytest.LogCaptureFixture):
    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def check(client: TestClient) -> None:
        plain = await client.post("/crash")
        assert plain.status == 500
        request_id = (await plain.json())["request_id"]
        assert request_id in (await plain.json())["detail"]
        assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
        given = await client.post("/crash", headers={"X-Request-Id": "abc123"})
        assert (await given.json())["request_id"] == "abc123"

    with caplog.at_level(logging.ERROR, logger="web.middleware"):
        _serve(check, {"/crash": crash})


def test_aiohttp_errors_become_json_with_a_detail():
    async def check(client: TestClient) -> None:
        missing = await client.post("/nowhere")
        assert missing.status == 404 and "see /openapi.json" in (await missing.json())["detail"]
        wrong = await client.get("/predict")
        assert wrong.status == 405 and (await wrong.json())["detail"] == "method GET not allowed on /predict"

    _serve(check, {"/predict": _ok})
