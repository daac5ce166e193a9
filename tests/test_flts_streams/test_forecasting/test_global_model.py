"""The global model: scale-free inputs, training across several series, registration under its own name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flts_streams.forecasting import packaging
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.frame import PreparedFrame, prepare_frame
from flts_streams.forecasting.pipeline import data_files, train_global_and_register
from flts_streams.forecasting.spec import FEATURES, VOLUME_FEATURES
from flts_streams.forecasting.training import TrainConfig, joined_origins, train

FAST = TrainConfig(epochs=2, hidden_size=16, window=30, horizon=10, members=1, history_days=2, scale_free=True)


def _site(seed: int, factor: float = 1.0, days: int = 3) -> pd.DataFrame:
    df = demo_frame(days=days, seed=seed, gaps=0, blanks=0)
    df[list(VOLUME_FEATURES)] *= factor
    return df


def _prepared(df: pd.DataFrame) -> PreparedFrame:
    return prepare_frame(df, required=FEATURES, impute=True)


@pytest.fixture(scope="module")
def scale_free():
    return train([_prepared(_site(2)), _prepared(_site(3, factor=20.0))], FAST).forecaster


def test_a_site_with_c_times_the_traffic_gets_c_times_the_forecast(scale_free):
    """The same weights serve a site carrying 2e7 and one carrying 2e8: exact, through both serving paths."""
    site = _site(4)
    bigger = site.copy()
    bigger[list(VOLUME_FEATURES)] *= 37.0
    a, b = _prepared(site), _prepared(bigger)
    small, large = scale_free.forecast(a), scale_free.forecast(b)
    np.testing.assert_allclose(large.values, 37.0 * small.values, rtol=1e-4)
    np.testing.assert_allclose(large.quantiles, 37.0 * small.quantiles, rtol=1e-4)
    inputs = [scale_free.make_input(a), scale_free.make_input(b)]
    by_numpy = scale_free._predict_numpy(
        np.stack([i.window for i in inputs]),
        np.array([i.last_ns for i in inputs]),
        np.stack([i.history for i in inputs]),
    )
    np.testing.assert_allclose(by_numpy[1], 37.0 * by_numpy[0], rtol=1e-4)
    np.testing.assert_allclose(by_numpy[0, :, :, 0], small.values, rtol=1e-4)


def test_a_model_with_absolute_inputs_is_not_scale_free():
    """The property above is the scale-free inputs' doing, not an accident of the network (control)."""
    absolute = train(_prepared(_site(2)), TrainConfig(epochs=2, hidden_size=16, horizon=10, members=1)).forecaster
    site = _site(4)
    bigger = site.copy()
    bigger[list(VOLUME_FEATURES)] *= 37.0
    ratio = absolute.forecast(_prepared(bigger)).values / absolute.forecast(_prepared(site)).values
    assert not np.allclose(ratio, 37.0, rtol=0.05)


def test_the_spec_names_the_relative_columns_and_survives_json(scale_free):
    spec = scale_free.spec
    assert spec.relative == VOLUME_FEATURES and spec.log_targets
    assert type(spec).from_json(spec.to_json()) == spec


def test_no_training_window_crosses_from_one_series_into_the_next():
    rows, val_starts, w, h = [200, 120, 300], [160, 96, 240], 30, 10
    train_at, val_at = joined_origins(rows, val_starts, w, h)
    bounds = np.cumsum([0, *rows])
    for at, split in ((train_at, "train"), (val_at, "val")):
        frame = np.searchsorted(bounds, at, side="right") - 1
        lo, hi = bounds[frame], bounds[frame + 1]
        cut = lo + np.asarray(val_starts)[frame]
        assert (at - w >= lo).all() and (at + h <= hi).all()
        assert (at + h <= cut).all() if split == "train" else (at >= cut).all()
    assert len(train_at) == sum(v - w - h + 1 for v in val_starts)


def test_the_global_model_trains_on_a_directorys_files_and_registers_under_its_name(tmp_path, mlflow_store):
    (tmp_path / "cells").mkdir()
    for i, factor in enumerate((1.0, 8.0)):
        _site(10 + i, factor).to_csv(tmp_path / "cells" / f"cell-{i}.csv", index=False)
    (tmp_path / "cells" / "notes.txt").write_text("not data")
    assert [p.name for p in data_files([tmp_path / "cells"])] == ["cell-0.csv", "cell-1.csv"]
    reg = train_global_and_register(
        [tmp_path / "cells"], "network-global", TrainConfig(epochs=1, hidden_size=16, members=1), alias="champion"
    )
    assert reg.registered_name == "network-global" and reg.promoted
    loaded = packaging.load("models:/network-global@champion")
    assert loaded.forecaster.spec.relative == VOLUME_FEATURES


def test_an_identifiers_first_champion_must_beat_the_global_model(tmp_path, mlflow_store):
    """Own before global in the serving order: an own model that forecasts worse would displace a better one."""
    from flts_streams.forecasting.evaluation import validation_mae
    from flts_streams.forecasting.pipeline import load_frame, train_and_register
    from flts_streams.forecasting.training import split_point

    data = tmp_path / "site.csv"
    _site(12).to_csv(data, index=False)
    cfg = TrainConfig(epochs=1, hidden_size=8, members=1)
    train_global_and_register([data], "flts-global", cfg, alias="champion", progress=False)
    reg = train_and_register(
        data, "A", cfg, registry_prefix="flts-", alias="champion", progress=False, rival="flts-global"
    )
    assert "the champion of flts-global" in reg.reason
    frame = load_frame(data, cfg.features)
    start = split_point(len(frame), cfg)
    own, rival = (packaging.load(u).forecaster for u in (reg.model_uri, "models:/flts-global@champion"))
    assert reg.promoted == (validation_mae(own, frame, start) < validation_mae(rival, frame, start))
