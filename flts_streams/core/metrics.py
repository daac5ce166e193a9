"""Prometheus metrics of the service (seconds, Prometheus naming); one registry per app."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
REPAIR_ACTIONS = ("read_again", "idle_read_again", "retention_removed", "no_record")
# Labels of flts_fallback_predictions: the rung that answered (serving_rule.model_source), the default
# split by whether it was trained on synthetic data (flts dev's demo model).
FALLBACK_KINDS = ("global", "default", "synthetic_demo")


class Metrics:
    """All custom metrics; Faust's sensor registers into the same registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_duration = Histogram(
            "flts_http_request_duration_seconds",
            "HTTP request duration",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter("flts_http_requests", "HTTP requests", ["route", "status"], registry=r)
        self._http_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}  # labels() costs ~1.5 us a call
        self.http_in_flight = Gauge(
            "flts_http_predictions_in_flight", "Predictions admitted and not finished", registry=r
        )
        self.rejected = Counter("flts_rejected_requests", "Requests rejected before inference", ["reason"], registry=r)
        self.rejected_overloaded = self.rejected.labels(
            "overloaded"
        )  # counted per 429 under overload: no labels() there
        self.batch_size = Histogram(
            "flts_inference_batch_size", "Windows per model forward", ["source"], buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_duration = Histogram(
            "flts_inference_duration_seconds", "Model forward duration", ["source"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.model_info = Gauge(
            "flts_model_info",
            "Model in use per identifier (value 1)",
            ["identifier", "run_id", "model_uri"],
            registry=r,
        )
        self.model_load = Histogram(
            "flts_model_load_duration_seconds", "Model load time", buckets=LATENCY_BUCKETS, registry=r
        )
        self.fallbacks = Counter(
            "flts_fallback_predictions",
            "Forecasts answered by a model not trained for the identifier",
            ["model"],
            registry=r,
        )
        self.fallback_children = {kind: self.fallbacks.labels(kind) for kind in FALLBACK_KINDS}
        self.models_loaded = Gauge("flts_models_loaded", "Models currently loaded", registry=r)
        self.model_evictions = Counter(
            "flts_model_evictions", "Own models unloaded to keep FLTS_MODEL__MAX_LOADED", registry=r
        )
        self.claims = Counter("flts_claims", "Claims by outcome", ["outcome"], registry=r)
        # Live accuracy, labelled by model run and horizon bucket only: never one series per identifier.
        live = ["run_id", "horizon"]
        self.live_steps = Counter("flts_live_scored_steps", "Forecast steps scored against actuals", live, registry=r)
        self.live_abs_error = Counter(
            "flts_live_abs_error", "Sum of absolute errors of scored steps (first target)", live, registry=r
        )
        self.live_persistence_abs_error = Counter(
            "flts_live_persistence_abs_error",
            "Sum of the absolute errors persistence would have made on the same steps (first target)",
            live,
            registry=r,
        )
        self.live_interval_steps = Counter(
            "flts_live_interval_steps", "Scored steps that had a forecast interval", live, registry=r
        )
        self.training_requests = Counter(
            "flts_training_requests", "Retraining requests published by the drift detector", ["kind"], registry=r
        )
        self.live_interval_hits = Counter(
            "flts_live_interval_hits", "Scored steps whose actual fell inside the forecast interval", live, registry=r
        )
        self.claim_batch_size = Histogram(
            "flts_claim_batch_size", "Claims per micro-batch", buckets=BATCH_BUCKETS + (512, 1024), registry=r
        )
        self.claim_duration = Histogram(
            "flts_claim_processing_duration_seconds",
            "Processing time of one claim micro-batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.claim_latency = Histogram(
            "flts_claim_end_to_end_seconds",
            "Claim publish time to result",
            buckets=LATENCY_BUCKETS + (30.0, 60.0, 300.0),
            registry=r,
        )
        self.promotions = Counter("flts_model_promotions", "Model promotion decisions", ["decision"], registry=r)
        self.training_events = Counter(
            "flts_training_events", "model-training events by status", ["status"], registry=r
        )
        self.buffer_depth = Gauge(
            "flts_stream_buffer_depth", "Messages buffered in Faust streams", ["topic"], registry=r
        )
        self.buffer_full = Counter(
            "flts_stream_buffer_full", "Times a stream buffer filled and fetching paused", ["topic"], registry=r
        )
        self.paused_partitions = Gauge(
            "flts_paused_partitions", "Partitions whose fetching is paused by flow control", registry=r
        )
        self.broker_connected = Gauge(
            "flts_broker_connected", "1 while the consumer reaches its group coordinator", registry=r
        )
        self.offset_repairs = Counter(
            "flts_consumer_offset_repairs",
            "Partition heads the consumer read again or stepped over",
            ["action"],
            registry=r,
        )
        # Known actions start at 0 so the alert's increase() sees the first repair, not a new series.
        for action in REPAIR_ACTIONS:
            self.offset_repairs.labels(action)
        self.consumer_lag = Gauge(
            "flts_consumer_lag",
            "Highwater minus the next offset to process (after the commit or the last processed)",
            ["topic", "partition"],
            registry=r,
        )

    def observe_http(self, route: str, status: str, seconds: float) -> None:
        """Count one HTTP request and record its duration."""
        children = self._http_children.get((route, status))
        if children is None:
            children = (self.http_requests.labels(route, status), self.http_duration.labels(route, status))
            self._http_children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)


class FaustMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor (streams, topics, tables, commits, ...) minus its per-request HTTP accounting.

    Our error middleware already counts every request by route and status, in seconds. Faust's
    copy cost ~5% of the event loop per request and recorded every error we map to a status
    (429, 400, ...) as a 500, because the view raised before a response existed.
    """

    def __init__(self, registry: CollectorRegistry, prefix: str = "flts_faust", **kwargs: Any) -> None:
        metrics = FaustMetrics.create(registry, prefix)
        for unused in (metrics.http_status_codes, metrics.http_latency):  # never fed: do not export empty series
            registry.unregister(unused)
        super().__init__(metrics=metrics, **kwargs)

    def on_web_request_start(self, app: Any, request: Any, *, view: Any = None) -> dict:
        """Nothing to record: see the class docstring."""
        return {}

    def on_web_request_end(self, app: Any, request: Any, response: Any, state: dict, *, view: Any = None) -> None:
        """Nothing to record: see the class docstring."""
