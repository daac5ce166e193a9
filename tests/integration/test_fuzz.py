"""Hostile HTTP input: schema-driven fuzzing of every route, plus explicit nasty cases."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from flts_streams.serving.openapi_spec import openapi_document

pytestmark = pytest.mark.integration
EXAMPLES = {"/predict": 60, "/predict/{identifier}": 25, "/frames/{identifier}": 15}  # others: 5 each


def _operations():
    return [result.ok() for result in schemathesis.openapi.from_dict(openapi_document("fuzz")).get_all_operations()]


@pytest.mark.parametrize("operation", _operations(), ids=lambda op: f"{op.method.upper()} {op.path}")
def test_fuzzed_requests_never_get_a_5xx_and_errors_are_json(worker, operation):
    @settings(
        max_examples=EXAMPLES.get(operation.path, 5),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case) -> None:
        response = case.call(base_url=worker.url, timeout=15)
        assert response.status_code < 500, f"{case.as_curl_command()} -> {response.status_code} {response.text[:300]}"
        if response.status_code >= 400:
            assert response.json()["detail"], case.as_curl_command()

    check()
    assert requests.get(worker.url + "/healthz", timeout=5).status_code == 200


def _post_raw(worker, body: bytes) -> requests.Response:
    return requests.post(worker.url + "/predict", data=body, headers={"Content-Type": "application/json"}, timeout=30)


@pytest.mark.parametrize(
    "body,status",
    [
        (b"[" * 50_000 + b"]" * 50_000, 422),  # deeply nested JSON
        (json.dumps({"data": {"ts": list(range(1_000_000))}}).encode(), 413),  # 10^6 rows (over the body limit)
        (
            json.dumps({"data": {"ts": ["2024-01-01T00:00:00"] * 30, "down": [float("nan")] * 30}})
            .replace("NaN", "-Infinity")
            .encode(),
            400,
        ),
        (json.dumps({"identifier": "../../etc/passwd"}).encode(), 404),  # nothing cached under such a name
        (b'{"data": {"ts": [1], "down": [1e999]}}', 400),
    ],
)
def test_explicit_hostile_bodies(worker, body, status):
    r = _post_raw(worker, body)
    assert r.status_code == status, r.text[:300]
    assert r.json()["detail"]


def test_slow_clients_do_not_starve_health(worker):
    host, port = "127.0.0.1", worker.port
    slow = []
    try:
        for _ in range(20):  # slowloris-style: open requests that trickle headers
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            slow.append(s)
        for _ in range(5):
            for s in slow:
                s.sendall(b"X-Slow: 1\r\n")
            started = time.perf_counter()
            assert requests.get(worker.url + "/healthz", timeout=5).status_code == 200
            assert time.perf_counter() - started < 0.5
            time.sleep(0.2)
    finally:
        for s in slow:
            s.close()
    assert requests.get(worker.url + "/readyz", timeout=5).status_code == 200
