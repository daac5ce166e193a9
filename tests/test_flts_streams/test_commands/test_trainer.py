"""`flts trainer`'s retraining: an identifier's claim objects (through its prediction logs) to a registered model."""

from __future__ import annotations

import time

import mlflow

from flts_streams.commands.trainer import retrain
from flts_streams.core.settings import Settings
from flts_streams.forecasting import packaging
from flts_streams.forecasting.demo import demo_frame
from flts_streams.streaming.object_store import LocalStore
from tests.test_flts_streams.test_streaming.test_claim_training_data import log_claim, parquet


def _settings(tmp_path, min_rows: int) -> Settings:
    """The store under tmp_path; MLflow is the mlflow_store fixture's (the trainer's process configures it)."""
    return Settings(paths={"var_dir": tmp_path / "var"}, retraining={"epochs": 1, "min_rows": min_rows})


def _claims_around_an_outage(settings: Settings, identifier: str, outage: range = range(20, 25)) -> None:
    """Hourly 30-row objects over two days, and hours without claims (``outage``: 150 rows missing by default)."""
    store = LocalStore(settings.paths.var_dir / "objects")
    frame = demo_frame(days=2, seed=21, gaps=0, blanks=0)
    now = time.time()
    for n in range(48):
        if n in outage:  # more rows missing than training imputes
            continue
        key = f"claims/{identifier}/{n:02d}.parquet"
        store.put("flts", key, parquet(frame.iloc[n * 30 : n * 30 + 30]))
        log_claim(store, identifier, key, now - 3600 + n, n)


def test_a_hole_in_the_claims_leaves_the_data_on_each_side_to_retrain_on(tmp_path, mlflow_store):
    """Before: the joined table had one gap too long to impute, and every retraining of the identifier failed."""
    settings = _settings(tmp_path, min_rows=1000)
    _claims_around_an_outage(settings, "cell-9")
    event = retrain(settings, {"identifier": "cell-9", "reason": "drift"})
    assert event.status == "SUCCESS", event.reason
    assert event.model_uri and event.identifier == "cell-9" and event.reason == "drift"
    run = mlflow.get_run(event.run_id)
    assert run.data.tags["data"] == "claims of cell-9, 43 objects"
    # One member, distilled into the network flts train serves: a retrained champion forwards as fast.
    spec = packaging.load(event.model_uri).forecaster.spec
    assert (spec.kind, spec.distilled_from, event.model_type) == ("mlp", 1, "mlp")


def test_too_few_rows_on_either_side_of_a_hole_fail_with_the_reason(tmp_path, mlflow_store):
    settings = _settings(tmp_path, min_rows=1200)  # 1,290 distinct rows, in runs of 180 and 1,110
    _claims_around_an_outage(settings, "cell-9", outage=range(6, 11))
    event = retrain(settings, {"identifier": "cell-9"})
    assert event.status == "FAILED"
    assert event.reason == "1110 rows in runs of 296 or more without a gap over 30 rows, 1200 needed to retrain"
