"""Schemas of every message and request (pydantic: strict, with clear errors)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """Body of POST /predict (compatible with the original clients)."""

    model_config = ConfigDict(extra="ignore")

    identifier: str | None = Field(None, min_length=1, max_length=200)
    data: dict[str, list[Any]] | None = None
    index_col: str | None = None
    inference_length: int | None = Field(None, ge=1, le=10_000)


class Claim(BaseModel):
    """Claim-check message on inference-data: where the processed data lies."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    identifier: str = Field(min_length=1, max_length=200)
    bucket: str | None = None
    object_key: str = Field(validation_alias=AliasChoices("object_key", "object"), min_length=1)
    claim_id: str | None = None
    config_hash: str | None = None


class TrainingEvent(BaseModel):
    """model-training event announcing a training run's state."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["RUNNING", "SUCCESS", "FAILED"]
    run_id: str = Field(min_length=1)
    model_uri: str | None = None
    identifier: str | None = None
    model_type: str | None = None
    config_hash: str | None = None
    operation: str | None = None


class Champion(BaseModel):
    """Value of the champions GlobalTable: the model serving one identifier."""

    identifier: str
    model_uri: str
    run_id: str
    score: float | None = None
    decided_at: float
