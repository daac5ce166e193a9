"""Periodic sampling of flow-control state (buffer depth, paused partitions, consumer lag) and broker reachability."""

import logging
import time

from flts_streams.app import app
from flts_streams.kafka.flow_control import sample
from flts_streams.serving.readiness import observe_broker

log = logging.getLogger(__name__)


@app.timer(interval=app.settings.streaming.observe_interval_s)
async def observe_flow() -> None:
    """Update flow gauges; sampling must never take the worker down."""
    try:
        sample(app, app.flow)
        observe_broker(app, time.monotonic())
    except Exception:  # noqa: BLE001 - metrics are best effort
        log.exception("flow sampling failed")
