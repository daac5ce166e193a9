"""Admission control: a slot per prediction, a cheap capacity check before any body is read."""

from __future__ import annotations

import pytest

from flts_streams.core.errors import Overloaded
from flts_streams.core.metrics import Metrics
from flts_streams.serving.admission import Admission


def _rejected(p: Admission) -> float:
    return p.metrics.rejected.labels("overloaded")._value.get()


def _in_flight_gauge(p: Admission) -> float:
    return p.metrics.registry.get_sample_value("flts_http_predictions_in_flight")


def test_capacity_check_sheds_only_when_every_slot_is_taken():
    p = Admission(2, Metrics())
    with p.admit():
        assert not p.at_capacity()  # one slot left
        with p.admit():
            assert p.at_capacity()
            with pytest.raises(Overloaded, match="2 predictions in flight"):
                with p.admit():
                    pass
        assert not p.at_capacity()  # the slot came back
    assert _rejected(p) == 1


def test_the_in_flight_gauge_counts_admitted_predictions_when_scraped():
    p = Admission(3, Metrics())
    assert _in_flight_gauge(p) == 0
    with p.admit(), p.admit():
        assert _in_flight_gauge(p) == 2
        with pytest.raises(Overloaded), p.admit(), p.admit():
            pass
        assert _in_flight_gauge(p) == 2  # the rejected one never counted; the third came back
    assert _in_flight_gauge(p) == 0


def test_slots_are_released_when_the_prediction_fails():
    p = Admission(1, Metrics())
    with pytest.raises(RuntimeError), p.admit():
        raise RuntimeError("model blew up")
    with p.admit():
        pass
    assert _in_flight_gauge(p) == 0
