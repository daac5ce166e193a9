"""The flts command line: demo data, settings table, evaluate on small data, train from claims."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from flts_streams.commands.cli import main
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.pipeline import evaluate, train_and_register
from flts_streams.forecasting.spec import FEATURES
from flts_streams.forecasting.training import TrainConfig
from flts_streams.streaming.object_store import LocalStore
from tests.test_flts_streams.test_streaming.test_claim_training_data import store_network


def test_demo_data_has_the_real_columns_gaps_and_blanks(tmp_path, capsys):
    out = tmp_path / "demo.csv"
    assert main(["demo-data", "--out", str(out), "--days", "2"]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["time", *FEATURES]
    steps = pd.to_datetime(df["time"]).diff().dt.total_seconds().dropna()
    assert steps.min() == 120 and steps.max() > 120  # a few gaps
    assert df[list(FEATURES)].isna().sum().sum() > 0  # a few blank cells
    assert "wrote" in capsys.readouterr().out


def test_settings_command_prints_table(capsys):
    assert main(["settings"]) == 0
    assert "FLTS_SERVING__MAX_IN_FLIGHT" in capsys.readouterr().out


def test_evaluate_reports_model_and_baselines(tmp_path, mlflow_store):
    history, test = tmp_path / "h.csv", tmp_path / "t.csv"
    full = demo_frame(days=4, seed=8, gaps=0, blanks=0)
    full.iloc[:-600].to_csv(history, index=False)
    full.iloc[-600:].to_csv(test, index=False)
    reg = train_and_register(
        history,
        "ev",
        TrainConfig(epochs=2, hidden_size=16, members=1),
        registry_prefix="flts-",
        alias="champion",
        progress=False,
    )
    ev = evaluate(reg.model_uri, test, history, stride=5, reference="lightgbm", plot=tmp_path / "p.png")
    methods = ["model", "persistence", "seasonal_naive", "window_mean", "profile_7d", "blend", "reference"]
    assert list(ev.forecasts) == methods
    assert len(ev.origins) > 50 and all(ev.mae_by_horizon(m).shape == (30,) for m in methods)
    assert ev.origins[0] == len(full) - 600 and np.all(np.diff(ev.origins) == 5)  # from the first test row
    assert sorted(ev.quantiles) == [0.1, 0.5, 0.9] and 0 <= ev.coverage(0.1, 0.9).mean() <= 1
    assert ev.mae("reference") < ev.mae("persistence")  # a fitted reference, not noise
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "a.csv"], "give --identifier ID"),
        (["--data", "a.csv", "--identifier", "A", "--global"], "give --identifier ID"),
        (["--data", "a.csv", "b.csv", "--identifier", "A"], "several files train the global model"),
        (["--data", "a.csv", "--global", "--publish"], "registry alias"),
        (["--identifier", "A", "--claims"], "--claims trains the global model (add --global)"),
        (["--global"], "--data FILE_OR_DIR ... or --claims"),
        (["--global", "--claims", "--data", "a.csv"], "--data FILE_OR_DIR ... or --claims"),
        (["--global", "--data", "a.csv", "--claims-sample", "5"], "choose among the stored claims: add --claims"),
        (["--global", "--claims", "--claims-sample", "0"], "a count of identifiers (1 or more)"),
        (["--global", "--claims", "--claims-days", "-1"], "--claims-days a number above 0"),
    ],
)
def test_train_says_which_model_it_trains(argv, message, caplog):
    assert main(["train", *argv]) != 0
    assert message in caplog.text


def test_the_global_model_trains_on_the_stored_claims_of_a_network(tmp_path, monkeypatch, capsys, caplog):
    """`flts train --global --claims`: every identifier's short claim objects joined by time, from the store."""
    monkeypatch.setenv("FLTS_PATHS__VAR_DIR", str(tmp_path / "var"))
    argv = ["train", "--global", "--claims", "--epochs", "1", "--members", "1", "--quiet"]
    assert main(argv) == 2
    assert "no processed claims in the last 14 days: no prediction logs under flts/inference-logs/" in caplog.text
    store_network(LocalStore(tmp_path / "var" / "objects"), time.time())
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "claims of the last 14 days: 2 of 4 identifiers, 660 rows in 2 series; 2 left out (" in out
    assert "short: its longest run of rows is 120, 296 needed" in out
    assert "registered=flts-global version=1" in out and "champion=yes" in out
    assert main([*argv, "--claims-sample", "1", "--seed", "3"]) == 0
    assert "claims of the last 14 days: 1 of 1 identifiers (a sample of the 4 found), " in capsys.readouterr().out
