"""Plain rules of the admin routes: which token enables them, how a request proves it, which model URIs they load."""

from __future__ import annotations

import hmac

from flts_streams.core.errors import InvalidInput, Unauthorized

ADMIN_TOKEN_MIN = 16  # characters; shorter tokens (an empty Secret key among them) leave the admin routes disabled
MODEL_URI_SCHEMES = ("models:/", "runs:/")


def admin_secret(token: str | None) -> bytes:
    """The configured token as bytes; Unauthorized when the routes are disabled (no token, or too short to be one)."""
    if not token:
        raise Unauthorized("admin routes are disabled: set FLTS_SERVING__ADMIN_TOKEN")
    if len(token) < ADMIN_TOKEN_MIN:
        raise Unauthorized(
            f"admin routes are disabled: FLTS_SERVING__ADMIN_TOKEN is shorter than {ADMIN_TOKEN_MIN} characters"
        )
    return token.encode()


def authorize(authorization: str | None, token: str | None) -> None:
    """Check an ``Authorization: Bearer <token>`` header against the token, in constant time."""
    secret = admin_secret(token)
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), secret):
        raise Unauthorized("missing or wrong admin token (Authorization: Bearer <token>)")


def model_uri(raw: object) -> str:
    """A model URI the admin route may load: the tracking server's models:/ or runs:/ URIs, nothing else."""
    uri = str(raw)
    if not uri.startswith(MODEL_URI_SCHEMES) or len(uri) > 500:
        raise InvalidInput(f"model_uri must be a models:/ or runs:/ URI of the tracking server; got {uri[:100]!r}")
    return uri
