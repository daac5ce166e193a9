"""Two workers in one group: cached forecasts answer on whichever worker is asked."""

from __future__ import annotations

import json
import shutil

import pytest
import requests

from flts_bench.claims import claim_objects
from tests.integration.harness import (
    Worker,
    claim,
    consume,
    metric,
    poll,
    produce,
    put_demo_objects,
    start_broker,
)

pytestmark = pytest.mark.integration
FALLBACKS, KINDS = "flts_fallback_predictions_total", ("global", "default")


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


CELLS, OWN = 2_000, 30  # identifiers with cached state; how many of them have a champion of their own


def _network_store(tmp_path, var_models) -> str:
    """A copy of the demo model's MLflow store where the first OWN cells and the global model have a champion."""
    from mlflow.tracking import MlflowClient

    from flts_streams.forecasting import packaging

    shutil.copy(var_models / "mlflow.db", tmp_path / "mlflow.db")  # artifacts stay where the copy points
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    packaging.configure(tracking)
    client = MlflowClient()
    source = client.get_model_version_download_uri("flts-demo", "1")
    run_id = client.get_model_version("flts-demo", "1").run_id
    for name in [f"flts-cell-{i:05d}" for i in range(OWN)] + ["flts-global"]:
        client.create_registered_model(name)
        client.set_registered_model_alias(name, "champion", client.create_model_version(name, source, run_id).version)
    return tracking


def _loaded(worker: Worker) -> set[str]:
    """Keys of the models in a worker's memory, from flts_model_info."""
    text = requests.get(f"{worker.url}/metrics", timeout=30).text
    return {
        line.split('identifier="')[1].split('"')[0] for line in text.splitlines() if line.startswith("flts_model_info{")
    }


def test_a_few_thousand_identifiers_route_and_load_their_own_models_lazily(tmp_path, trained):
    """Issue 27: readiness loads no champion; each champion loads once, on the worker owning its identifier."""
    var_models, uri = trained
    broker = start_broker(tmp_path / "broker")
    objects = tmp_path / "objects"
    env = {
        "FLTS_MODEL__DEFAULT_URI": uri,
        "FLTS_MODEL__TRACKING_URI": _network_store(tmp_path, var_models),
        "FLTS_STORAGE__URL": f"file://{objects}",
    }
    a, b = Worker(tmp_path / "a", broker.url, env), Worker(tmp_path / "b", broker.url, env)
    idents = [f"cell-{i:05d}" for i in range(CELLS)]
    keys = claim_objects(objects / "flts" / "claims", idents, 1, 60)
    try:
        a.start().wait_ready()
        assert _loaded(a) == {"*", "@global"}  # ready with 31 champions indexed and none loaded
        b.start().wait_ready()
        a.wait_ready()
        produce(
            broker.bootstrap,
            "inference-data",
            [(i.encode(), claim(i, keys[i][0]), None) for i in idents],
            pipelined=True,
        )
        results = consume(broker.bootstrap, "inference-results", CELLS, timeout=300)
        assert len({r["value"]["identifier"] for r in results}) == CELLS
        own = {r["value"]["identifier"] for r in results if r["value"]["model_source"] == "own"}
        assert own == set(idents[:OWN])
        assert {r["value"]["model_identifier"] for r in results if r["value"]["model_source"] != "own"} == {"@global"}
        # Counted by the rung that answered (at least once: a claim may be forecast again after a rebalance).
        global_, default = (sum(metric(w, f'{FALLBACKS}{{model="{k}"}}') for w in (a, b)) for k in KINDS)
        assert global_ >= CELLS - OWN and default == 0
        on_a, on_b = _loaded(a) - {"*", "@global"}, _loaded(b) - {"*", "@global"}
        assert on_a | on_b == own and not on_a & on_b and on_a and on_b  # once each, on the owner
        for ident in [*idents[:OWN], *idents[OWN::97]]:  # asked of either worker: routed to the owner
            via_a = requests.get(f"{a.url}/predict/{ident}", timeout=30).json()
            via_b = requests.get(f"{b.url}/predict/{ident}", timeout=30).json()
            assert via_a["cached"] and via_a == via_b, ident
            assert via_a["model_source"] == ("own" if ident in own else "global")
        assert _loaded(a) - {"*", "@global"} == on_a and _loaded(b) - {"*", "@global"} == on_b  # nothing loaded twice
    finally:
        a.stop()
        b.stop()
        broker.stop()
