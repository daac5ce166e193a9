"""HTTP serving logic without aiohttp: /predict body parsing (native fast path, explaining path), admission, limits, readiness, OpenAPI."""
