"""Metrics: series the alerts read exist before their first event."""

from prometheus_client import generate_latest

from flts_streams.core.metrics import REPAIR_ACTIONS, Metrics


def test_offset_repairs_exported_at_zero_for_every_action_before_any_repair():
    text = generate_latest(Metrics().registry).decode()
    for action in REPAIR_ACTIONS:
        assert f'flts_consumer_offset_repairs_total{{action="{action}"}} 0.0' in text


def test_observe_http_counts_and_times_per_route_and_status():
    m = Metrics()
    m.observe_http("/predict", "200", 0.004)
    m.observe_http("/predict", "200", 0.02)
    m.observe_http("/predict", "429", 0.0001)
    get = m.registry.get_sample_value
    assert get("flts_http_requests_total", {"route": "/predict", "status": "200"}) == 2
    assert get("flts_http_requests_total", {"route": "/predict", "status": "429"}) == 1
    assert get("flts_http_request_duration_seconds_count", {"route": "/predict", "status": "200"}) == 2
    assert get("flts_http_request_duration_seconds_bucket", {"route": "/predict", "status": "200", "le": "0.005"}) == 1


def test_faust_monitor_keeps_faust_metrics_but_leaves_http_to_ours():
    from flts_streams.core.metrics import FaustMonitor

    m = Metrics()
    monitor = FaustMonitor(m.registry)
    state = monitor.on_web_request_start(None, None)
    monitor.on_web_request_end(None, None, None, state)  # Faust passes no response when the view raised
    text = generate_latest(m.registry).decode()
    assert "flts_faust_messages_received" in text  # Faust's stream metrics are still exported
    assert "flts_faust_http" not in text  # its request series (ms, errors as 500) are not
