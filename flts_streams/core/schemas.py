"""Schemas of every message and request (pydantic: strict, with clear errors)."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from flts_streams.core.errors import SchemaError

M = TypeVar("M", bound=BaseModel)


def parse_message(model: type[M], raw: bytes | None, what: str) -> M:
    """Parse a Kafka message value as ``model``; SchemaError names the first problems."""
    if not raw:
        raise SchemaError(f"{what} value is empty")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:3])
        raise SchemaError(f"invalid {what}: {first}") from exc


IDENTIFIER_MAX = 200  # characters
CLAIM_FIELD_MAX = 1024  # characters of a claim's bucket, object key, claim id and config hash
HORIZON_MAX = 10_000  # steps a request may ask for (the model's own horizon is usually far lower)
QUANTILES_MAX = 20  # quantile levels a request may ask for (a model answers only those it was trained for)


class PredictRequest(BaseModel):
    """Body of POST /predict (compatible with the original clients)."""

    model_config = ConfigDict(extra="ignore")

    identifier: str | None = Field(None, min_length=1, max_length=IDENTIFIER_MAX)
    data: dict[str, list[Any]] | None = None
    index_col: str | None = None
    inference_length: int | None = Field(None, ge=1, le=HORIZON_MAX)
    quantiles: list[float] | None = Field(
        None,
        min_length=1,
        max_length=QUANTILES_MAX,
        description="quantile levels to forecast besides the point forecast",
    )


class Claim(BaseModel):
    """Claim-check message on inference-data: where the processed data lies."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # Bounded, so a claim's result (which echoes them) stays far below the broker's record limit:
    # a 1 MB claim_id made a result the producer refused, which cost the whole micro-batch.
    identifier: str = Field(min_length=1, max_length=IDENTIFIER_MAX)
    bucket: str | None = Field(None, max_length=CLAIM_FIELD_MAX)
    object_key: str = Field(
        validation_alias=AliasChoices("object_key", "object"), min_length=1, max_length=CLAIM_FIELD_MAX
    )
    claim_id: str | None = Field(None, max_length=CLAIM_FIELD_MAX)
    config_hash: str | None = Field(None, max_length=CLAIM_FIELD_MAX)


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
    reason: str | None = None  # why it was trained (a retraining request) or why it failed


class Champion(BaseModel):
    """Value of the champions GlobalTable: the model serving one identifier."""

    identifier: str
    model_uri: str
    run_id: str
    score: float | None = None
    decided_at: float
