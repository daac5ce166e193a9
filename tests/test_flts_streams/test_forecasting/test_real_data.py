"""The real Barcelona LTE data (docs/ARCHITECTURE.md, "The data"): a short training beats the baselines end to end.

These tests skip, saying why, where the files are absent: they are not redistributed with the repository.
"""

from __future__ import annotations

import orjson
import pandas as pd
import pytest
import torch

from flts_streams.core.settings import ServingSettings
from flts_streams.forecasting.pipeline import evaluate, train_and_register
from flts_streams.forecasting.spec import FEATURES
from flts_streams.forecasting.training import TrainConfig
from flts_streams.serving.predict_request import parse_predict, request_frame


@pytest.mark.parametrize("site", ["ElBorn", "PobleSec"])
def test_a_short_training_on_real_data_beats_persistence_and_seasonal_naive(real_data, mlflow_store, site):
    torch.set_num_threads(1)  # as `flts train` on a 2-core machine (FLTS_TRAINING__TORCH_THREADS)
    reg = train_and_register(
        real_data / f"{site}.csv",
        site,
        TrainConfig(epochs=6, members=1),
        registry_prefix="flts-",
        alias="champion",
        progress=False,
    )
    ev = evaluate(reg.model_uri, real_data / f"{site}_test.csv", real_data / f"{site}.csv", stride=10)
    mae = {name: ev.mae(name) for name in ev.forecasts}
    # The benchmark of docs/MODEL.md at every 10th row; the full model's figures are there.
    assert mae["model"] < 0.9 * mae["persistence"], mae
    assert mae["model"] < mae["seasonal_naive"], mae
    assert len(ev.origins) > 90 and ev.truth.shape[1] == 30
    assert 0.6 < ev.coverage(0.1, 0.9).mean() < 0.95  # loose after 6 epochs; docs/MODEL.md has the full model's


def test_the_real_files_rows_as_the_original_client_posts_them_make_a_frame(real_data):
    rows = pd.read_csv(real_data / "ElBorn_test.csv").iloc[100:130]
    body = orjson.dumps(
        {"identifier": "ElBorn", "index_col": "time", "data": {c: rows[c].tolist() for c in rows.columns}}
    )
    req = parse_predict(body, "application/json", {}, ServingSettings())
    assert req.native is not None, "the real files' rows take the native path"
    spec = type("Spec", (), {"features": FEATURES, "window": 30, "cadence_s": 120.0})()
    frame = request_frame(req, spec)
    assert len(frame) == 30 and frame.cadence.astype("timedelta64[s]").astype(int) == 120
