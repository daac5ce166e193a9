# Type stub of the C extension flts_streams/serving/_native_body.c (read by the type checker only).
from typing import Any

def parse(body: bytes) -> tuple[str | None, str | None, int | None, Any] | None: ...
