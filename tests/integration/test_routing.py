"""Two workers in one group: cached forecasts answer on whichever worker is asked."""

from __future__ import annotations

import json

import pytest
import requests

from tests.integration.harness import Worker, metric, poll, produce, put_demo_objects, start_broker

pytestmark = pytest.mark.integration


def test_cached_predict_is_routed_to_the_owner(tmp_path, trained):
    var_models, uri = trained
    broker = start_broker(tmp_path / "broker")
    objects = tmp_path / "objects"
    env = {
        "FLTS_MODEL__DEFAULT_URI": uri,
        "FLTS_MODEL__TRACKING_URI": f"sqlite:///{var_models / 'mlflow.db'}",
        "FLTS_STORAGE__URL": f"file://{objects}",
    }
    a = Worker(tmp_path / "a", broker.url, env)
    b = Worker(tmp_path / "b", broker.url, env)
    idents = [f"cell-{i}" for i in range(12)]
    try:
        put_demo_objects(objects, idents, seed=200)
        a.start().wait_ready()
        b.start().wait_ready()
        a.wait_ready()  # b's join rebalanced a: routing is under test here, not claims published mid-rebalance
        produce(
            broker.bootstrap,
            "inference-data",
            [(i.encode(), json.dumps({"identifier": i, "object_key": f"{i}.parquet"}).encode(), None) for i in idents],
        )

        def all_answer() -> bool:
            return all(
                requests.get(f"{w.url}/predict/{i}", timeout=10).status_code == 200 for w in (a, b) for i in idents
            )

        poll(all_answer, timeout=90, interval=1.0)
        assert {requests.get(f"{a.url}/frames/{i}", timeout=10).json()["rows"] for i in idents} == {720}
        for ident in idents:
            via_a = requests.get(f"{a.url}/predict/{ident}", timeout=10).json()
            via_b = requests.post(
                f"{b.url}/predict", json={"identifier": ident, "inference_length": 5}, timeout=10
            ).json()
            assert via_a["cached"] is True and via_b["cached"] is True
            assert via_a["predictions"][:5] == via_b["predictions"]
        # Both workers processed claims, so each owns some identifiers and the other's answers were routed.
        processed = [metric(w, 'flts_claims_total{outcome="processed"}') for w in (a, b)]
        assert all(n >= 1 for n in processed) and sum(processed) == len(idents)
    finally:
        a.stop()
        b.stop()
        broker.stop()
