"""Faust's table routing, which web/predict.py works around for cached POST /predict.

(docs/ARCHITECTURE.md, "Known traps")

Faust forwards a routed request to the owner with the method and headers but not the body, so
the owner waits for a body that never comes. web/predict.py therefore forwards cached requests to
the owner's GET /predict/{identifier} (identifier in the path, horizon in the query); that path
is proven on two real workers in tests/integration/test_routing.py.
"""

from __future__ import annotations

import asyncio

import faust
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

BODY = b'{"identifier": "PobleSec", "inference_length": 5}'


async def test_faust_table_routing_forwards_a_post_without_its_body():
    received: dict[str, object] = {}

    async def owner_view(request: web.Request) -> web.Response:
        received["method"] = request.method
        received["body"] = await request.read()
        return web.json_response({"status": "SUCCESS"})

    owner = web.Application()
    owner.router.add_post("/predict", owner_view)
    router_app = faust.App("routing-trap", broker="memory://", store="memory://")
    async with TestServer(owner, host="127.0.0.1") as owner_server:
        destination = URL(f"http://127.0.0.1:{owner_server.port}")

        async def routed_view(request: web.Request) -> web.StreamResponse:
            # What @app.table_route does once the key's owner is another worker.
            return await router_app.router._route_req(destination, router_app.web, request)

        front = web.Application()
        front.router.add_post("/predict", routed_view)
        try:
            async with TestClient(TestServer(front, host="127.0.0.1")) as client:
                try:
                    await asyncio.wait_for(
                        client.post("/predict", data=BODY, headers={"Content-Type": "application/json"}), 2.0
                    )
                except TimeoutError:
                    pass  # the owner is still waiting for the body the router never sent
        finally:
            await router_app.http_client.close()
    assert received.get("method") == "POST", "the routed request did not reach the owner at all"
    # If this fails, Faust forwards bodies now and cached POSTs could be table-routed directly.
    assert received.get("body") != BODY
