"""Metrics: series the alerts read exist before their first event."""
from prometheus_client import generate_latest

from flts_streams.metrics import REPAIR_ACTIONS, Metrics


def test_offset_repairs_exported_at_zero_for_every_action_before_any_repair():
    text = generate_latest(Metrics().registry).decode()
    for action in REPAIR_ACTIONS:
        assert f'flts_consumer_offset_repairs_total{{action="{action}"}} 0.0' in text
