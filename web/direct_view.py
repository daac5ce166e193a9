"""A Faust view whose requests go straight to its method handler (the hot /predict routes)."""

from __future__ import annotations

from typing import Any

from faust.web import View
from faust.web.exceptions import WebError


class DirectView(View):
    """A View that calls its handler for the request's method directly, as View.dispatch does minus the sensors.

    Why: Faust's View.__call__ awaits View.dispatch (faust/web/views.py), which also runs every
    request through the app's sensor delegate (``on_web_request_start``/``_end``): one dict and one call
    per sensor each way, recording nothing here (flts_streams.core.metrics.FaustMonitor drops Faust's
    per-request accounting; web/middleware.py counts every request). That and the extra coroutine
    layer cost ~2.5 us a request (hot loop: 2.6-3.3 -> 0.5 us; docs/BENCHMARKS.md). What dispatch does
    otherwise (the handler by method, match_info as keyword arguments, a WebError answered by
    on_request_error) is kept; tests/test_web/test_direct_view.py pins Faust's dispatch so an upgrade
    that changes it fails there.
    """

    async def __call__(self, request: Any) -> Any:
        """Perform the request: the handler of its method, with the route's match_info."""
        handler = self.methods[request.method.lower()]
        try:
            return await handler(request, **(request.match_info or {}))
        except WebError as exc:
            return await self.on_request_error(request, exc)
