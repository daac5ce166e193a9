"""The serving rule: which model answers an identifier, and how an answer says why (docs/ARCHITECTURE.md).

Order: the identifier's own champion, else the global champion (one model trained across many
identifiers), else the default model (FLTS_MODEL__DEFAULT_URI; under `flts dev` the demo model).
Light on purpose (no torch, no mlflow): promotion, agents and answers share it.
"""

from __future__ import annotations

from typing import Literal

DEFAULT_KEY = "*"  # the default model's key among the loaded models and in the champions table
GLOBAL_KEY = "@global"  # the global champion's key among the loaded models
Source = Literal["own", "global", "default"]


def model_source(identifier: str, owner: str) -> Source:
    """Which rung of the serving order answered: the identifier's own model, the global one or the default."""
    if owner == identifier:
        return "own"
    return "global" if owner == GLOBAL_KEY else "default"


def model_reason(identifier: str, source: Source, synthetic: bool) -> str:
    """Why this model answered, in words for the caller."""
    if source == "own":
        return f"the champion model of {identifier!r}"
    if source == "global":
        return (
            f"no model of its own is serving {identifier!r}: the global model, trained across many identifiers, "
            "answered"
        )
    if synthetic:
        return (
            f"no model is trained for {identifier!r}: the demo model answered; it was trained on synthetic data, "
            "so this forecast says nothing about your data. "
            f"Train one: flts train --identifier {identifier} --data FILE"
        )
    return f"no model is trained for {identifier!r}: the default model (FLTS_MODEL__DEFAULT_URI) answered"
