"""The serving rule: which model answers an identifier, and how an answer says why (docs/ARCHITECTURE.md).

Light on purpose (no torch, no mlflow): promotion, agents and answers share it.
"""

from __future__ import annotations

DEFAULT_KEY = "*"  # the default model's key among the loaded models and in the champions table


def model_reason(identifier: str, fallback: bool, synthetic: bool) -> str:
    """Why this model answered, in words for the caller."""
    if not fallback:
        return f"the champion model of {identifier!r}"
    if synthetic:
        return (
            f"no model is trained for {identifier!r}: the demo model answered; it was trained on synthetic data, "
            "so this forecast says nothing about your data. "
            f"Train one: flts train --identifier {identifier} --data FILE"
        )
    return f"no model is trained for {identifier!r}: the default model (FLTS_MODEL__DEFAULT_URI) answered"
