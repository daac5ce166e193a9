"""The HTTP ceiling: a bare aiohttp handler returning a fixed JSON body (python -m flts_bench.bare PORT SIZE)."""

from __future__ import annotations

import sys

from aiohttp import web


def make_app(size: int) -> web.Application:
    """App answering POST /predict with ``size`` bytes of JSON after reading the body."""
    head, tail = '{"status":"SUCCESS","pad":"', '"}'
    body = (head + "x" * max(0, size - len(head) - len(tail)) + tail).encode()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/predict", handler)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/ping", ping)
    return app


if __name__ == "__main__":
    web.run_app(make_app(int(sys.argv[2])), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
