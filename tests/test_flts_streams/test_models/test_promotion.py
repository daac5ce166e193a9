"""Champion decisions: forced, first, same run, no data, backtest winner; event decoding and payloads."""

from __future__ import annotations

import json

import pytest

from flts_streams.core.errors import InvalidInput, SchemaError
from flts_streams.core.schemas import TrainingEvent
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.frame import prepare_frame
from flts_streams.forecasting.spec import FEATURES
from flts_streams.models.promotion import (
    backtest_mae,
    champion_from_table,
    decide_by_backtest,
    decode_training_event,
    smoke_test,
)
from tests.test_flts_streams.helpers import model


@pytest.fixture(scope="module")
def frame():
    return prepare_frame(demo_frame(days=1, seed=5), required=FEATURES, impute=True)


def test_decode_training_event():
    ev = decode_training_event(b'{"status": "SUCCESS", "run_id": "r1", "identifier": "A"}')
    assert ev.status == "SUCCESS" and ev.model_uri is None
    for bad in (b"", b"nope", b'{"status": "DONE", "run_id": "r"}', b'{"status": "SUCCESS"}'):
        with pytest.raises(SchemaError):
            decode_training_event(bad)


def test_first_model_and_forced_are_promoted(frame):
    cand, champ = model(1), model(2)
    assert decide_by_backtest("A", "u", cand, None, None, force=False).reason == "no champion yet"
    forced = decide_by_backtest("A", "u", cand, champ, None, force=True)
    assert forced.promoted and forced.previous_uri == champ.uri


def test_same_run_or_no_data_is_not_promoted(frame):
    cand, champ = model(1), model(2)
    assert not decide_by_backtest("A", "u", cand, cand, frame, force=False).promoted
    short = decide_by_backtest("A", "u", cand, champ, frame.tail(40), force=False)
    assert not short.promoted and "need 60" in short.reason


def test_backtest_picks_the_lower_mae(frame):
    a, b = model(1), model(2)
    mae_a, mae_b = backtest_mae(a.forecaster, frame), backtest_mae(b.forecaster, frame)
    assert mae_a != mae_b
    d = decide_by_backtest("A", "u", a, b, frame, force=False)
    assert d.promoted == (mae_a < mae_b)
    assert d.candidate_mae == pytest.approx(mae_a) and d.champion_mae == pytest.approx(mae_b)
    msg = json.loads(d.message(TrainingEvent(status="SUCCESS", run_id=a.run_id, identifier="A", model_type="lstm")))
    assert msg["decision"] == ("PROMOTED" if d.promoted else "REJECTED") and msg["model_type"] == "lstm"
    table_value = d.champion().model_dump(mode="json")
    assert champion_from_table(table_value).run_id == a.run_id
    assert champion_from_table(json.dumps(table_value).encode()).model_uri == "u"
    assert champion_from_table(b"garbage") is None and champion_from_table(None) is None


def test_smoke_test_rejects_wrong_features(frame):
    smoke_test(model().forecaster, frame)
    narrow = prepare_frame(
        {"time": [str(t) for t in frame.timestamps[:40].astype("datetime64[s]")], "down": frame.column("down")[:40]}
    )
    with pytest.raises(InvalidInput):
        smoke_test(model().forecaster, narrow)
