"""DirectView answers as Faust's View.dispatch does, minus the per-request sensor calls; Faust's dispatch pinned."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any

import faust
import pytest
from faust.sensors import Sensor
from faust.web import View
from faust.web.exceptions import NotFound

from web.direct_view import DirectView
from web.predict import Predict, PredictCached


class _Recorder(Sensor):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def on_web_request_start(self, app: Any, request: Any, *, view: Any = None) -> dict:
        self.calls.append("start")
        return {}

    def on_web_request_end(self, app: Any, request: Any, response: Any, state: dict, *, view: Any = None) -> None:
        self.calls.append("end")


class _Request:
    def __init__(self, method: str, match_info: dict[str, str] | None = None) -> None:
        self.method = method
        self.match_info = match_info or {}


class _Handlers:
    """The same handlers on both bases: a plain answer, route arguments, a Faust WebError, any other error."""

    async def get(self, request: Any, identifier: str) -> Any:
        return ("got", identifier)

    async def post(self, request: Any, fail: str = "") -> Any:
        if fail == "web":
            raise NotFound("no such thing")
        if fail == "other":
            raise KeyError("boom")
        return "posted"


class _Faust(_Handlers, View):
    pass


class _Direct(_Handlers, DirectView):
    pass


@pytest.fixture()
def views() -> tuple[View, View, _Recorder]:
    app = faust.App("test-direct-view")
    recorder = _Recorder()
    app.sensors.add(recorder)
    return _Faust(app, app.web), _Direct(app, app.web), recorder


def _answer(view: View, request: _Request) -> Any:
    try:
        response = asyncio.run(view(request))
    except KeyError as exc:
        return ("raised", repr(exc))
    if hasattr(response, "status"):  # a WebError's answer: an aiohttp response
        return (response.status, response.body)
    return response


@pytest.mark.parametrize(
    "request_",
    [
        _Request("POST"),
        _Request("GET", {"identifier": "cell-7"}),
        _Request("POST", {"fail": "web"}),
        _Request("POST", {"fail": "other"}),
    ],
    ids=["answer", "route-arguments", "web-error", "other-error"],
)
def test_a_direct_view_answers_as_faust_dispatch_does(views, request_):
    faust_view, direct_view, _ = views
    assert _answer(direct_view, request_) == _answer(faust_view, request_)


def test_faust_dispatch_calls_the_sensors_and_a_direct_view_does_not(views):
    """What DirectView saves: if Faust's View stops calling the sensors per request, DirectView may go."""
    faust_view, direct_view, recorder = views
    asyncio.run(faust_view(_Request("POST")))
    assert recorder.calls == ["start", "end"]
    asyncio.run(direct_view(_Request("POST")))
    assert recorder.calls == ["start", "end"], "a direct view calls no sensor"


# The code DirectView.__call__ stands in for, as of faust-streaming 0.15.3; a change there fails here.
PINNED = "a053ad6e27a7"


def test_faust_view_dispatch_is_the_code_direct_view_replaces():
    source = inspect.getsource(View.__call__) + inspect.getsource(View.dispatch)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    assert digest == PINNED, (
        "faust's View.__call__/dispatch changed: check that web/direct_view.py still does what dispatch does "
        f"(handler by method, match_info keyword arguments, WebError -> on_request_error), then pin {digest}"
    )


def test_the_predict_routes_are_direct_views():
    assert issubclass(Predict, DirectView) and issubclass(PredictCached, DirectView)
