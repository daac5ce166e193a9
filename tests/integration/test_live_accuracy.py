"""Live accuracy end to end: a later claim scores an earlier forecast; the scores survive lost local state."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import requests

from flts_streams.commands import accuracy
from flts_streams.commands.cli import main
from flts_streams.core.errors import FltsError
from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import (
    Worker,
    claim,
    claims_env,
    consume,
    metric,
    poll,
    produce,
    put_object,
    start_broker,
)

pytestmark = pytest.mark.integration
IDENT = "acc-1"


def _result_of(bootstrap: str, claim_id: str) -> dict:
    """The inference-results value of one claim, once it is there."""

    def find() -> dict | None:
        for r in consume(bootstrap, "inference-results", None, timeout=30):
            if r["value"]["claim"]["claim_id"] == claim_id:
                return r["value"]
        return None

    return poll(find, timeout=120, interval=1)


def _accuracy(worker: Worker) -> dict:
    response = requests.get(f"{worker.url}/accuracy/{IDENT}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_later_claim_scores_the_earlier_forecast_and_the_scores_survive_lost_local_state(tmp_path, trained, capsys):
    broker = start_broker(tmp_path / "broker")
    objects = tmp_path / "objects"
    worker = Worker(
        tmp_path / "var", broker.url, claims_env(trained, objects) | {"FLTS_ACCURACY__REMEMBER_CACHED": "true"}
    )
    two_days = demo_frame(days=2, seed=41, gaps=0, blanks=0)
    put_object(objects, "day1.parquet", two_days.iloc[:720])
    put_object(objects, "day2.parquet", two_days.iloc[720:])
    try:
        worker.start().wait_ready()
        assert requests.get(f"{worker.url}/accuracy/{IDENT}", timeout=10).status_code == 404
        with pytest.raises(FltsError, match="404 no forecasts remembered"):
            accuracy.fetch_report(worker.url, IDENT)
        produce(
            broker.bootstrap, "inference-data", [(IDENT.encode(), claim(IDENT, "day1.parquet", claim_id="c1"), None)]
        )
        first = _result_of(broker.bootstrap, "c1")
        # A cached forecast of the same frame and model is held, and left out beside the claim's own.
        cached = requests.get(f"{worker.url}/predict/{IDENT}", timeout=10).json()
        assert cached["run_id"] == first["run_id"] and cached["predictions"] == first["predictions"]
        produce(
            broker.bootstrap, "inference-data", [(IDENT.encode(), claim(IDENT, "day2.parquet", claim_id="c2"), None)]
        )
        _result_of(broker.bootstrap, "c2")
        body = poll(lambda: (b := _accuracy(worker))["scored_through"] and b)

        # The figures are those of the first answer against the second object's rows.
        forecast = np.array([p["down"] for p in first["predictions"]])
        actual = two_days["down"].to_numpy(np.float64)[720 : 720 + len(forecast)]
        day = body["windows"]["24h"]
        assert sum(r["steps"] for r in day) == len(forecast) == 30
        mae = sum(r["mae"]["down"] * r["steps"] for r in day) / 30
        assert mae == pytest.approx(np.abs(forecast - actual).mean(), rel=1e-4)
        persistence = np.abs(two_days["down"].to_numpy(np.float64)[719] - actual).mean()
        assert sum(r["persistence_mae"]["down"] * r["steps"] for r in day) / 30 == pytest.approx(persistence, rel=1e-4)
        assert {r["run_id"] for r in day} == {first["run_id"]}
        assert [f["scored_steps"] for f in body["forecasts"]] == [30, 0]
        assert all(r["coverage"] is not None for r in day)  # the demo model forecasts quantiles

        # Prometheus: by model run and horizon bucket, no identifier label.
        assert metric(worker, f'flts_live_scored_steps_total{{horizon="1-10",run_id="{first["run_id"]}"}}') == 10
        assert IDENT not in requests.get(f"{worker.url}/metrics", timeout=5).text
        summary = requests.get(f"{worker.url}/accuracy", timeout=10).json()
        assert [w["identifier"] for w in summary["worst"]] == [IDENT] and summary["models"][0]["steps"] == 30

        # The command line: the table, and a figure of forecasts vs actuals and error over time.
        figure = tmp_path / "accuracy.png"
        assert main(["accuracy", IDENT, "--url", worker.url, "--plot", str(figure)]) == 0
        printed = capsys.readouterr().out
        assert "last 24h of actuals (down)" in printed and f"| {first['run_id'][:8]} | 1-10 | 10 |" in printed
        assert figure.stat().st_size > 20_000

        # Local RocksDB state gone: the changelog restores the scores exactly.
        assert worker.stop() == 0
        shutil.rmtree(worker.var_dir / "faust" / "v1" / "tables")
        worker.start().wait_ready()
        assert _accuracy(worker) == body
    finally:
        worker.stop()
        broker.stop()
