"""Admission of /predict requests: a bounded number in flight, beyond it an immediate Overloaded (429)."""

from __future__ import annotations

from flts_streams.core.errors import Overloaded
from flts_streams.core.metrics import Metrics


class Admission:
    """Counts predictions in flight against ``max_in_flight``."""

    def __init__(self, max_in_flight: int, metrics: Metrics) -> None:
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.in_flight = 0
        # Read when /metrics is scraped, not written per request (two locked gauge updates a prediction).
        metrics.http_in_flight.set_function(lambda: self.in_flight)

    def at_capacity(self) -> bool:
        """True while max_in_flight predictions are running."""
        return self.in_flight >= self.max_in_flight

    def overloaded(self) -> Overloaded:
        """Count one rejection for capacity; the error to answer it with."""
        self.metrics.rejected_overloaded.inc()
        return Overloaded(f"more than {self.max_in_flight} predictions in flight; retry shortly")

    def admit(self) -> _Slot:
        """Bound predictions in flight; beyond the limit raise Overloaded at once (use with ``with``)."""
        if self.at_capacity():
            raise self.overloaded()
        return _Slot(self)


class _Slot:
    """One admitted prediction: holds a slot from ``with`` until the block ends (a class: cheaper than a generator)."""

    __slots__ = ("_admission",)

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def __enter__(self) -> None:
        self._admission.in_flight += 1

    def __exit__(self, *exc_info: object) -> None:
        self._admission.in_flight -= 1
