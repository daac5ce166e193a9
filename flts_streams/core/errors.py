"""One error hierarchy for the whole service; web/ maps it to HTTP in one place."""

from __future__ import annotations


class FltsError(Exception):
    """Root of every error this project raises on purpose."""


class InvalidInput(FltsError):
    """The caller's data or request is wrong (HTTP 400, dead letter for claims)."""


class MissingColumns(InvalidInput):
    """Required columns are absent."""


class BadTimestamps(InvalidInput):
    """Timestamps are missing, unparseable, duplicated or irregular."""


class BadValues(InvalidInput):
    """Values are non-numeric or non-finite."""


class NotEnoughRows(InvalidInput):
    """Fewer rows than the model window."""


class HorizonTooLong(InvalidInput):
    """Requested horizon exceeds what the model predicts."""


class RequestTooLarge(InvalidInput):
    """Request body or row count above the configured limit (HTTP 413)."""


class BodyTimeout(InvalidInput):
    """The request body did not arrive whole in time (HTTP 408)."""


class UnsupportedMediaType(InvalidInput):
    """Body is not JSON (HTTP 415)."""


class MalformedBody(InvalidInput):
    """Body claims to be JSON but does not parse (HTTP 400; 415 is for a wrong media type)."""


class SchemaError(InvalidInput):
    """Fields have the wrong type (HTTP 422)."""


class ObjectTooLarge(InvalidInput):
    """A claim's object exceeds the configured bytes, rows or columns (dead-lettered, never decoded whole)."""


class InvalidObjectKey(InvalidInput):
    """Object key or bucket is not allowed (path traversal, foreign bucket)."""


class NotFound(FltsError):
    """Something named by the caller does not exist (HTTP 404)."""


class UnknownIdentifier(NotFound):
    """No cached frame for this identifier."""


class ObjectNotFound(NotFound):
    """The referenced object is not in the store."""


class Unavailable(FltsError):
    """The service cannot answer now; retry later (HTTP 503)."""


class NoModel(NotFound):
    """No model serves this identifier and none will without a training run or a default (HTTP 404)."""


class ModelLoadError(Unavailable):
    """A model URI could not be loaded or failed its smoke test."""


class TransientError(Unavailable):
    """A dependency failed in a way worth retrying (object store down, timeouts)."""


class ModelsNotReady(TransientError):
    """No model answers this identifier yet, but one may: models still loading or the registry unreachable."""


class RegistryUnavailable(TransientError):
    """The model registry or artifact store could not be reached (a load worth retrying, not a broken model)."""


class Overloaded(FltsError):
    """Too many predictions in flight (HTTP 429)."""


class DeadlineExceeded(FltsError):
    """The request or claim deadline passed before an answer (HTTP 504)."""


class Unauthorized(FltsError):
    """Missing or wrong admin token (HTTP 401)."""


class BrokerError(FltsError):
    """The embedded broker could not be started or reached."""
