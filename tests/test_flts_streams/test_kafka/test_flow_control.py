"""Flow sensor: consumer lag counts from the later of what this process processed and the group's commit."""

from faust.types import TP

from flts_streams.core.metrics import Metrics
from flts_streams.kafka.flow_control import FlowSensor

P0, P1, P2 = TP("inference-data", 0), TP("inference-data", 1), TP("inference-data", 2)


def _sensor(processed: dict[TP, int]) -> FlowSensor:
    sensor = FlowSensor(Metrics(), ["inference-data"])
    for tp, offset in processed.items():
        sensor.on_message_out(tp, offset, None)
    return sensor


def test_lag_of_a_partition_taken_over_is_what_lies_beyond_the_commit():
    # A successor has processed nothing of P0 yet; the group committed up to 1,800 of 1,872.
    assert _sensor({}).lag({P0: 1872}, {P0: 1800}) == {P0: 72}


def test_lag_counts_from_the_last_processed_offset_once_it_passes_the_commit():
    sensor = _sensor({P0: 1849, P1: 10})
    assert sensor.lag({P0: 1872, P1: 100}, {P0: 1800, P1: 50}) == {P0: 22, P1: 50}


def test_lag_without_a_commit_or_processing_is_the_whole_partition():
    assert _sensor({}).lag({P2: 300}, {}) == {P2: 300}


def test_lag_ignores_other_topics_and_never_goes_negative():
    other = TP("model-training", 0)
    assert _sensor({P0: 20}).lag({P0: 10, other: 5}, {P0: 30}) == {P0: 0}
