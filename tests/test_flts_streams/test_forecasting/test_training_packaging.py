"""Training and MLflow packaging: determinism, logging, registry/champion, reload in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting import packaging
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.frame import prepare_frame
from flts_streams.forecasting.pipeline import train_and_register
from flts_streams.forecasting.spec import FEATURES
from flts_streams.forecasting.training import TrainConfig, train

FAST = TrainConfig(epochs=2, hidden_size=16, window=30, horizon=10, members=1)


@pytest.fixture(scope="module")
def frame():
    return prepare_frame(demo_frame(days=3, seed=2), required=FEATURES, impute=True)


def test_training_is_deterministic_with_a_seed(frame):
    a, b = train(frame, FAST), train(frame, FAST)
    assert a.history == b.history
    assert a.val_metrics["val_mae_down"] == b.val_metrics["val_mae_down"]
    assert {f"val_mae_down_h{h:02d}" for h in range(1, 11)} <= set(a.val_metrics)


def test_too_few_rows_is_a_clear_error(frame):
    with pytest.raises(InvalidInput, match="too few to train"):
        train(frame.tail(50), FAST)


def test_logged_model_reloads_in_a_fresh_process(tmp_path, frame, mlflow_store):
    data = tmp_path / "train.csv"
    demo_frame(days=3, seed=2).to_csv(data, index=False)
    reg = train_and_register(data, "site-a", FAST, registry_prefix="flts-", alias="champion", progress=False)
    assert reg.promoted and reg.reason == "no champion yet"
    here = packaging.load(reg.model_uri).forecaster.forecast(frame.tail(30)).values
    script = (
        "import sys, json, pandas as pd\n"
        "from flts_streams.forecasting import packaging\n"
        "from flts_streams.forecasting.demo import demo_frame\n"
        "from flts_streams.forecasting.frame import prepare_frame\n"
        "from flts_streams.forecasting.spec import FEATURES\n"
        "packaging.configure(sys.argv[1])\n"
        "f = prepare_frame(demo_frame(days=3, seed=2), required=FEATURES, impute=True)\n"
        "m = packaging.load(sys.argv[2])\n"
        "print(json.dumps(m.forecaster.forecast(f.tail(30)).values.tolist()))\n"
    )
    for uri in (reg.model_uri, "models:/flts-site-a@champion"):
        out = subprocess.run(
            [sys.executable, "-c", script, mlflow_store, uri], capture_output=True, text=True, check=True
        )
        np.testing.assert_allclose(np.array(json.loads(out.stdout.strip().splitlines()[-1])), here, rtol=1e-6)


def test_champion_moves_only_when_beaten_or_forced(tmp_path, mlflow_store):
    data = tmp_path / "train.csv"
    demo_frame(days=3, seed=2).to_csv(data, index=False)
    first = train_and_register(data, "site-b", FAST, registry_prefix="flts-", alias="champion", progress=False)
    same = train_and_register(data, "site-b", FAST, registry_prefix="flts-", alias="champion", progress=False)
    assert first.promoted and not same.promoted and "does not beat" in same.reason
    forced = train_and_register(
        data, "site-b", FAST, registry_prefix="flts-", alias="champion", promote=True, progress=False
    )
    assert forced.promoted
    assert str(MlflowClient().get_model_version_by_alias("flts-site-b", "champion").version) == forced.version


# What `flts train` serves by default: members distilled into an MLP (TrainConfig.distill_kind).
DISTILLED = replace(FAST, epochs=1, members=2, distill_hidden=8)


@pytest.mark.parametrize("cfg,kind", [(FAST, "lstm"), (DISTILLED, "mlp")], ids=["one network", "distilled"])
def test_pyfunc_predict_takes_the_predict_column_frame(tmp_path, mlflow_store, cfg, kind):
    import mlflow.pyfunc

    data = tmp_path / "train.csv"
    raw = demo_frame(days=3, seed=2)
    raw.to_csv(data, index=False)
    reg = train_and_register(data, "site-c", cfg, registry_prefix="flts-", alias="champion", progress=False)
    assert packaging.load(reg.model_uri).forecaster.spec.kind == kind
    # The kind the run, its model-training event (reg.model_type) and the registry show: the network served.
    assert reg.model_type == kind and MlflowClient().get_run(reg.run_id).data.tags["model_type"] == kind
    model = mlflow.pyfunc.load_model(reg.model_uri)
    window = raw.dropna().tail(30).rename(columns={"time": "ts"})
    window = window.assign(ts=pd.date_range("2024-02-01", periods=30, freq="2min").strftime("%Y-%m-%d %H:%M:%S"))
    out = model.predict(window)
    assert list(out.columns) == ["ts", "down"] and len(out) == 10
    assert out["ts"].iloc[0] == "2024-02-01T01:00:00"


def test_quantiles_are_calibrated_on_the_validation_split(frame):
    from dataclasses import replace

    from flts_streams.forecasting.evaluation import actuals, model_outputs, origins

    result = train(frame, FAST)
    spec = result.forecaster.spec
    assert spec.quantiles == (0.1, 0.5, 0.9) and len(spec.quantile_offsets) == 3
    at = origins(len(frame), result.val_start, spec.window, spec.horizon)
    truth = actuals(frame.column("down"), at, spec.horizon)
    out = model_outputs(result.forecaster, frame, at)[:, :, 0, :]
    below = [(truth <= out[..., 1 + i]).mean() for i in range(3)]
    np.testing.assert_allclose(below, [0.1, 0.5, 0.9], atol=0.03)  # what calibration promises on its own split
    uncalibrated = replace(spec, quantile_offsets=())
    assert uncalibrated.output_offsets.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_a_two_member_ensemble_trains_loads_and_forecasts(frame):
    from flts_streams.forecasting.forecast import Forecaster
    from flts_streams.forecasting.model import ForecastEnsemble

    result = train(frame, TrainConfig(epochs=1, hidden_size=8, window=30, horizon=10, members=2, distill=False))
    net = result.forecaster.net
    assert isinstance(net, ForecastEnsemble) and len(net.members) == 2
    assert {row["member"] for row in result.history} == {0, 1}
    reloaded = Forecaster.from_state(result.forecaster.spec, net.state_dict())
    window = frame.tail(200)
    np.testing.assert_allclose(reloaded.forecast(window).values, result.forecaster.forecast(window).values, rtol=1e-6)


def test_a_distilled_ensemble_serves_one_network(frame):
    from flts_streams.forecasting.model import ForecastNet

    result = train(frame, TrainConfig(epochs=2, hidden_size=8, window=30, horizon=10, members=2))
    spec = result.forecaster.spec
    assert isinstance(result.forecaster.net, ForecastNet) and spec.members == 1 and spec.distilled_from == 2
    assert {row["member"] for row in result.history} == {0, 1, -1}  # two members, then the distilled network
    assert np.isfinite(result.forecaster.forecast(frame.tail(200)).values).all()


def test_one_member_is_distilled_only_when_asked(frame):
    """The retrainer asks (distill_one): its one LSTM is served as flts train's ensembles are, as an MLP."""
    alone = train(frame, replace(FAST, epochs=1)).forecaster.spec
    result = train(frame, replace(FAST, epochs=1, distill_one=True, distill_hidden=8))
    spec = result.forecaster.spec
    assert (alone.kind, alone.distilled_from) == ("lstm", 0)
    assert (spec.kind, spec.hidden_size, spec.members, spec.distilled_from) == ("mlp", 8, 1, 1)
    assert {row["member"] for row in result.history} == {0, -1}


def test_the_distilled_network_has_its_own_kind_and_hidden_size_and_reloads_with_them(frame):
    from flts_streams.forecasting.forecast import Forecaster
    from flts_streams.forecasting.model import ForecastNet

    cfg = TrainConfig(epochs=1, hidden_size=16, distill_hidden=8, window=30, horizon=10, members=2)
    result = train(frame, cfg)
    net, spec = result.forecaster.net, result.forecaster.spec
    assert isinstance(net, ForecastNet) and spec.kind == "mlp" and spec.hidden_size == 8  # the served one
    assert not hasattr(net, "rnn") and net.encoder[0].out_features == 8
    reloaded = Forecaster.from_state(spec, net.state_dict())  # what loading the package does: the spec's network
    window = frame.tail(200)
    np.testing.assert_allclose(reloaded.forecast(window).values, result.forecaster.forecast(window).values, rtol=1e-6)
    same = train(frame, replace(cfg, distill_kind="", distill_hidden=0)).forecaster
    assert same.spec.kind == "lstm" and same.net.rnn.hidden_size == 16 and same.spec.hidden_size == 16  # the members'


def test_a_registration_can_leave_the_alias_to_the_workers(tmp_path, mlflow_store):
    data = tmp_path / "train.csv"
    demo_frame(days=3, seed=4).to_csv(data, index=False)
    reg = train_and_register(
        data, "site-b", FAST, registry_prefix="flts-", alias="champion", progress=False, decide=False
    )
    assert not reg.promoted and "backtest" in reg.reason
    assert packaging.champion_uri("flts-site-b", "champion") is None  # no alias: the backtest decides
