"""Readiness: tables recovered, a model loaded and, unless configured otherwise, the broker reachable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class BrokerWatch:
    """Remembers since when the consumer has been unable to reach the broker."""

    grace_s: float
    down_since: float | None = None

    def observe(self, connected: bool, now: float) -> None:
        """Record one observation of broker reachability."""
        if connected:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = now

    def unreachable_for(self, now: float) -> float:
        """Seconds the broker has been unreachable (0 while it is reachable)."""
        return 0.0 if self.down_since is None else now - self.down_since

    def in_outage(self, now: float) -> bool:
        """Unreachable for longer than the grace period (short blips and rebalances are not outages)."""
        return self.down_since is not None and self.unreachable_for(now) > self.grace_s


def coordinator_known(consumer: Any) -> bool | None:
    """Whether Faust's aiokafka consumer knows its group coordinator; None before the consumer runs.

    aiokafka marks the coordinator dead as soon as requests to it fail and finds it again when the
    broker answers, so this follows broker reachability within about a second. The attributes are
    private; tests/integration/test_reliability.py's outage test notices if they move.
    """
    inner = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    coordinator = getattr(inner, "_coordinator", None)
    if coordinator is None:
        return None
    return coordinator.coordinator_id is not None


def observe_broker(app: Any, now: float) -> None:
    """Update the app's broker watch and the flts_broker_connected gauge from its consumer."""
    app.broker_watch.observe(coordinator_known(app.consumer) is not False, now)
    app.metrics.broker_connected.set(0 if app.broker_watch.down_since is not None else 1)


def readiness(
    recovered: bool, model_loaded: bool, watch: BrokerWatch, now: float, requires_broker: bool
) -> tuple[dict[str, Any], int]:
    """The /readyz body and status."""
    outage = watch.in_outage(now)
    ready = recovered and model_loaded and not (outage and requires_broker)
    body: dict[str, Any] = {
        "ready": ready,
        "recovered": recovered,
        "model_loaded": model_loaded,
        "broker_connected": watch.down_since is None,
        "broker_unreachable_s": round(watch.unreachable_for(now), 1),
    }
    reasons = [
        text
        for failing, text in (
            (not recovered, "table recovery or a rebalance is in progress"),
            (not model_loaded, "models are still loading, or none is configured"),
            (outage, f"broker unreachable for {watch.unreachable_for(now):.0f}s; payload predictions still work"),
        )
        if failing
    ]
    if reasons:  # also when ready: an outage the probe is told to ignore is still worth saying
        body["detail"] = "; ".join(reasons)
    return body, 200 if ready else 503
