"""Readiness decisions and broker-outage tracking (pure logic)."""

from __future__ import annotations

from types import SimpleNamespace

from flts_streams.serving.readiness import BrokerWatch, coordinator_known, readiness


def test_watch_counts_an_outage_only_after_the_grace_period():
    w = BrokerWatch(grace_s=5)
    w.observe(False, now=100)
    w.observe(False, now=103)  # still down: the outage started at the first observation
    assert w.unreachable_for(104) == 4 and not w.in_outage(104)
    assert w.in_outage(106)
    w.observe(True, now=107)
    assert w.unreachable_for(108) == 0 and not w.in_outage(108)


def test_readiness_reflects_the_outage_unless_configured_not_to():
    w = BrokerWatch(grace_s=1)
    w.observe(False, now=0)
    body, status = readiness(True, True, w, now=10, requires_broker=True)
    assert status == 503 and body["broker_connected"] is False and body["broker_unreachable_s"] == 10
    assert "payload predictions still work" in body["detail"]
    body, status = readiness(True, True, w, now=10, requires_broker=False)
    assert status == 200 and body["ready"] is True and body["broker_connected"] is False


def test_readiness_needs_recovery_and_a_model():
    w = BrokerWatch(grace_s=1)
    body, status = readiness(False, True, w, 0, True)
    assert status == 503 and "recovery" in body["detail"]
    body, status = readiness(True, False, w, 0, True)
    assert status == 503 and body["detail"] == "models are still loading, or none is configured"
    assert readiness(True, True, w, 0, True) == (
        {"ready": True, "recovered": True, "model_loaded": True, "broker_connected": True, "broker_unreachable_s": 0.0},
        200,
    )


def test_coordinator_known_reads_the_aiokafka_consumer():
    def consumer(coordinator_id):
        return SimpleNamespace(
            _thread=SimpleNamespace(
                _consumer=SimpleNamespace(_coordinator=SimpleNamespace(coordinator_id=coordinator_id))
            )
        )

    assert coordinator_known(consumer(111)) is True
    assert coordinator_known(consumer(None)) is False
    assert coordinator_known(SimpleNamespace(_thread=SimpleNamespace(_consumer=None))) is None
