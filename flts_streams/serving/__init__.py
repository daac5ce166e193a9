"""HTTP serving logic without aiohttp: /predict body parsing, admission, body limits, readiness, the OpenAPI spec."""
