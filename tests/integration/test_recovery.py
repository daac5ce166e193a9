"""latest_frames recovers exactly from its changelog after the local RocksDB state is deleted."""

from __future__ import annotations

import json
import shutil

import pytest
import requests

from tests.integration.harness import Worker, poll, produce, put_demo_objects, start_broker

pytestmark = pytest.mark.integration


def test_table_recovers_after_local_state_is_deleted(tmp_path, trained):
    _, uri = trained
    broker = start_broker(tmp_path / "broker")
    var = tmp_path / "var"
    worker = Worker(
        var,
        broker.url,
        {"FLTS_MODEL__DEFAULT_URI": uri, "FLTS_MODEL__TRACKING_URI": f"sqlite:///{trained[0] / 'mlflow.db'}"},
    )
    try:
        idents = [f"r-{i}" for i in range(8)]
        put_demo_objects(var / "objects", idents, seed=100)
        worker.start().wait_ready()
        # Two claims per identifier: the table must end with the newest frame of each.
        msgs = [
            (ident.encode(), json.dumps({"identifier": ident, "object_key": f"{ident}.parquet"}).encode(), None)
            for _ in range(2)
            for ident in idents
        ]
        produce(broker.bootstrap, "inference-data", msgs)
        before = {}
        for ident in idents:
            before[ident] = poll(
                lambda: (r := requests.get(f"{worker.url}/frames/{ident}", timeout=5)).status_code == 200 and r.json()
            )
        cached = requests.get(f"{worker.url}/predict/{idents[0]}", timeout=10).json()
        assert worker.stop() == 0
        shutil.rmtree(var / "faust" / "v1" / "tables")
        worker.start().wait_ready()
        for ident in idents:
            assert requests.get(f"{worker.url}/frames/{ident}", timeout=5).json() == before[ident]
        again = requests.get(f"{worker.url}/predict/{idents[0]}", timeout=10).json()
        assert again["predictions"] == cached["predictions"]
    finally:
        worker.stop()
        broker.stop()
