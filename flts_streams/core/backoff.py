"""The one retry delay of the claims path: exponential from a first delay, capped."""

from __future__ import annotations

MAX_BACKOFF_S = 30.0


def backoff_s(first_s: float, attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): first_s, doubling, at most MAX_BACKOFF_S."""
    return min(first_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
