"""Alert rules and the Grafana dashboard: well-formed, current, and reading only metrics we export."""

from __future__ import annotations

import importlib.util
import json

from tests.test_deploy.helpers import DASHBOARD, ROOT, alert_rules, dashboard_exprs, exported_samples, promql_metrics


def _balanced(expr: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for ch in expr:
        if ch in depth:
            depth[ch] += 1
        elif ch in closing:
            depth[closing[ch]] -= 1
            if depth[closing[ch]] < 0:
                return False
    return not any(depth.values())


def test_alert_rules_are_complete_and_read_exported_metrics():
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    assert {
        "FltsPredictLatencyHigh",
        "FltsPredictErrorRatio",
        "FltsPredictShedding",
        "FltsConsumerLagHigh",
        "FltsNoModel",
    } <= names
    exported = exported_samples()
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]
        assert _balanced(rule["expr"]), rule["alert"]
        assert promql_metrics(rule["expr"]) <= exported, f"{rule['alert']} reads metrics we do not export"
    ops = (ROOT / "docs" / "OPERATIONS.md").read_text()
    assert all(name in ops for name in names), "every alert is explained in docs/OPERATIONS.md"


def test_dashboard_is_current_and_reads_exported_metrics():
    spec = importlib.util.spec_from_file_location("build_dashboard", ROOT / "docker" / "grafana" / "build_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert json.loads(DASHBOARD.read_text()) == module.dashboard(), "run python docker/grafana/build_dashboard.py"
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        assert _balanced(expr) and promql_metrics(expr) <= exported_samples(), expr
    titles = " ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for topic in (
        "request rate",
        "latency",
        "429",
        "batch size",
        "claim throughput",
        "lag",
        "model in use",
        "buffer depth",
        "skill",
        "coverage",
    ):
        assert topic in titles


def test_metric_name_check_can_fail():
    assert promql_metrics("rate(flts_http_requests_totl[1m])") - exported_samples() == {"flts_http_requests_totl"}
