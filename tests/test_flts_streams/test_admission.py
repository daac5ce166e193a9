"""Admission control: a slot per prediction, a cheap capacity check before any body is read."""
from __future__ import annotations

import pytest

from flts_streams.errors import Overloaded
from flts_streams.metrics import Metrics
from flts_streams.predictor import Predictor
from flts_streams.settings import Settings


def _rejected(p: Predictor) -> float:
    return p.metrics.rejected.labels("overloaded")._value.get()


def test_capacity_check_sheds_only_when_every_slot_is_taken():
    p = Predictor(Settings(serving={"max_in_flight": 2}), Metrics())
    with p.admit():
        p.check_capacity()  # one slot left: no error
        with p.admit():
            with pytest.raises(Overloaded, match="2 predictions in flight"):
                p.check_capacity()
            with pytest.raises(Overloaded):
                with p.admit():
                    pass
        p.check_capacity()  # the slot came back
    assert _rejected(p) == 2


def test_slots_are_released_when_the_prediction_fails():
    p = Predictor(Settings(serving={"max_in_flight": 1}), Metrics())
    with pytest.raises(RuntimeError), p.admit():
        raise RuntimeError("model blew up")
    with p.admit():
        pass
