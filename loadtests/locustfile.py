"""Locust load test of a flts worker: payload forecasts, cached forecasts, health."""

from __future__ import annotations

import os

from locust import FastHttpUser, between, task

from flts_bench.payloads import PayloadPool

CACHED_IDENTIFIER = os.environ.get("FLTS_LOAD_CACHED_IDENTIFIER", "")  # empty: skip the cached task


class ForecastUser(FastHttpUser):
    """A data scientist posting 30-row windows, sometimes asking for a cached forecast."""

    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self.pool = PayloadPool(seed=hash(id(self)) & 0xFFFF)

    @task(8)
    def predict_payload(self) -> None:
        with self.client.post("/predict", json=self.pool.payload(), name="POST /predict", catch_response=True) as r:
            if r.status_code == 200 and len(r.json()["predictions"]) != 30:
                r.failure("expected 30 predictions")

    @task(1)
    def predict_cached(self) -> None:
        if CACHED_IDENTIFIER:
            self.client.get(f"/predict/{CACHED_IDENTIFIER}", name="GET /predict/{identifier}")

    @task(1)
    def health(self) -> None:
        self.client.get("/healthz", name="GET /healthz")
