"""Markdown table of every setting (env name, default, description) for the README."""
from __future__ import annotations

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flts_streams.settings import ENV_PREFIX, Settings


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str]]:
    rows = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(_rows(ann, f"{prefix}{name.upper()}__"))
        else:
            rows.append((f"{prefix}{name.upper()}", _default(info), info.description or ""))
    return rows


def _default(info: FieldInfo) -> str:
    value = info.default
    return "(unset)" if value is None else repr(value) if not hasattr(value, "as_posix") else f"'{value.as_posix()}'"


def settings_table() -> str:
    """The table, one row per setting."""
    lines = ["| env | default | meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | `{default}` | {desc} |" for env, default, desc in _rows(Settings, ENV_PREFIX)]
    return "\n".join(lines)
