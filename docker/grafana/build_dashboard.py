"""Writes dashboards/flts-streams.json (run after changing a panel; a test checks it is current)."""

from __future__ import annotations

import json
from pathlib import Path

PANELS = [  # (title, unit, [(expr, legend)])
    (
        "Request rate by route and status",
        "reqps",
        [("sum by (route, status) (rate(flts_http_requests_total[1m]))", "{{route}} {{status}}")],
    ),
    (
        "/predict latency quantiles",
        "s",
        [
            (
                f"histogram_quantile({q}, sum by (le) "
                f'(rate(flts_http_request_duration_seconds_bucket{{route="/predict"}}[1m])))',
                f"p{int(q * 100)}",
            )
            for q in (0.5, 0.95, 0.99)
        ],
    ),
    (
        "Shed requests (429) and rejections",
        "reqps",
        [
            ("sum by (reason) (rate(flts_rejected_requests_total[1m]))", "{{reason}}"),
            ('sum(rate(flts_http_requests_total{status="429"}[1m]))', "429 responses"),
        ],
    ),
    (
        "Model batch size (mean windows per forward)",
        "none",
        [
            (
                "sum by (source) (rate(flts_inference_batch_size_sum[1m]))"
                " / sum by (source) (rate(flts_inference_batch_size_count[1m]))",
                "{{source}}",
            )
        ],
    ),
    ("Claim throughput by outcome", "ops", [("sum by (outcome) (rate(flts_claims_total[1m]))", "{{outcome}}")]),
    (
        "Consumer lag (inference-data)",
        "none",
        [('sum by (partition) (flts_consumer_lag{topic="inference-data"})', "partition {{partition}}")],
    ),
    (
        "Model in use",
        "none",
        [("max by (identifier, run_id, model_uri) (flts_model_info)", "{{identifier}} {{run_id}}")],
    ),
    (
        "Stream buffer depth and paused partitions",
        "none",
        [
            ("sum by (topic) (flts_stream_buffer_depth)", "{{topic}}"),
            ("sum(flts_paused_partitions)", "paused partitions"),
        ],
    ),
    ("Predictions in flight", "none", [("sum by (instance) (flts_http_predictions_in_flight)", "{{instance}}")]),
    (
        "Claim end-to-end latency p95",
        "s",
        [("histogram_quantile(0.95, sum by (le) (rate(flts_claim_end_to_end_seconds_bucket[5m])))", "p95")],
    ),
    (
        "Live forecast skill vs persistence (1 h of scored steps; above 0 beats persistence)",
        "percentunit",
        [
            (
                "1 - sum by (run_id, horizon) (rate(flts_live_abs_error_total[1h]))"
                " / sum by (run_id, horizon) (rate(flts_live_persistence_abs_error_total[1h]))",
                "{{run_id}} steps {{horizon}}",
            )
        ],
    ),
    (
        "Live MAE by horizon (first target)",
        "none",
        [
            (
                "sum by (horizon) (rate(flts_live_abs_error_total[1h]))"
                " / sum by (horizon) (rate(flts_live_scored_steps_total[1h]))",
                "steps {{horizon}}",
            )
        ],
    ),
    (
        "Live interval coverage (actuals inside the forecast interval)",
        "percentunit",
        [
            (
                "sum by (run_id) (rate(flts_live_interval_hits_total[1h]))"
                " / sum by (run_id) (rate(flts_live_interval_steps_total[1h]))",
                "{{run_id}}",
            )
        ],
    ),
]


def dashboard() -> dict:
    """The Grafana dashboard model."""
    panels = []
    for i, (title, unit, targets) in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "title": title,
                "type": "timeseries",
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(65 + j), "expr": expr, "legendFormat": legend}
                    for j, (expr, legend) in enumerate(targets)
                ],
            }
        )
    return {
        "uid": "flts-streams",
        "title": "flts-streams",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-30m", "to": "now"},
        "refresh": "10s",
        "tags": ["flts"],
        "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "dashboards" / "flts-streams.json"
    out.write_text(json.dumps(dashboard(), indent=2) + "\n")
