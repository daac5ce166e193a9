"""Admin route rules: an empty or short token disables them, Bearer is required, only registry model URIs load."""

from __future__ import annotations

import pytest

from flts_streams.core.errors import InvalidInput, Unauthorized
from flts_streams.serving.admin_rules import authorize, model_uri

TOKEN = "a-long-enough-admin-token"


@pytest.mark.parametrize("token", [None, "", "short-token"])
def test_no_empty_or_short_token_enables_the_admin_routes(token):
    """An empty Secret key made an empty token, which a request with no Authorization header matched."""
    for header in (None, "", "Bearer ", f"Bearer {token or ''}"):
        with pytest.raises(Unauthorized, match="disabled"):
            authorize(header, token)


def test_only_the_bearer_scheme_with_the_token_passes():
    authorize(f"Bearer {TOKEN}", TOKEN)
    authorize(f"bearer {TOKEN}", TOKEN)  # the scheme is case-insensitive (RFC 6750)
    for header in (None, TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"Token {TOKEN}"):
        with pytest.raises(Unauthorized, match="missing or wrong"):
            authorize(header, TOKEN)


def test_admin_loads_only_registry_model_uris():
    assert model_uri("models:/flts-demo@champion") == "models:/flts-demo@champion"
    assert model_uri("runs:/abc/model") == "runs:/abc/model"
    for bad in ("/etc/passwd", "file:///etc", "http://169.254.169.254/latest", "s3://bucket/model", "../model"):
        with pytest.raises(InvalidInput, match="models:/ or runs:/"):
            model_uri(bad)
