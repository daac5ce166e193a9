"""The dashboard, the alert rules and the KEDA latency trigger read metrics a live worker really exports."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
import yaml

from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import claim, consume, poll, post_predict, predict_payload, produce, put_object
from tests.test_deploy.helpers import ROOT, alert_rules, dashboard_exprs, promql_metrics

pytestmark = pytest.mark.integration


def _exposed(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_monitoring_queries_read_metrics_a_live_worker_exports(broker, worker):
    # Exercise every labelled series once: a forecast, a deadline rejection, claims end to end (two
    # consecutive days, so the second scores the first one's forecast: the live accuracy series).
    assert post_predict(worker, predict_payload()).status_code == 200
    assert post_predict(worker, predict_payload(), headers={"X-Deadline-Ms": "0"}).status_code == 504
    ident = f"mon-{uuid.uuid4().hex[:6]}"
    two_days = demo_frame(days=2, seed=9, gaps=0, blanks=0)
    for day, rows in (("d1", two_days.iloc[:720]), ("d2", two_days.iloc[720:])):
        put_object(worker.var_dir / "objects", f"{ident}-{day}.parquet", rows)
        claim_id = f"{ident}-{day}"
        produce(
            broker.bootstrap,
            "inference-data",
            [(ident.encode(), claim(ident, f"{ident}-{day}.parquet", claim_id=claim_id), None)],
        )
        poll(
            lambda cid=claim_id: any(
                r["value"]["claim"]["claim_id"] == cid
                for r in consume(broker.bootstrap, "inference-results", None, timeout=20)
            ),
            timeout=60,
            interval=1,
        )
    so = yaml.safe_load((ROOT / "k8s" / "keda-scaledobject.yaml").read_text())
    wanted = set().union(
        *(
            promql_metrics(e)
            for e in dashboard_exprs()
            + [r["expr"] for r in alert_rules()]
            + [t["metadata"].get("query", "") for t in so["spec"]["triggers"]]
        )
    )
    deadline = time.monotonic() + 30  # lag and buffer gauges appear with the next observation tick
    while True:
        missing = wanted - _exposed(requests.get(worker.url + "/metrics", timeout=10).text)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"monitoring reads metrics the worker does not export: {sorted(missing)}"


def _count(worker, route: str, status: str) -> float:
    prefix = f'flts_http_requests_total{{route="{route}",status="{status}"}} '
    lines = [ln for ln in requests.get(worker.url + "/metrics", timeout=10).text.splitlines() if ln.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0


def test_each_request_is_counted_once(worker):
    # Faust initialises its web server more than once; our middleware must still run once per request
    # (it ran 3 times: 3x its CPU, and every rate on the dashboard and in KEDA's trigger was 3x).
    before = _count(worker, "/predict_ping", "200")
    for _ in range(7):
        assert requests.get(worker.url + "/predict_ping", timeout=10).status_code == 200
    assert _count(worker, "/predict_ping", "200") - before == 7
