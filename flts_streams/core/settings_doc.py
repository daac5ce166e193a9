"""Markdown table of every setting (env name, default, description) for the README."""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flts_streams.core.settings import ENV_PREFIX, Settings


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


def our_env_names() -> set[str]:
    """Environment variables of our settings (FLTS_...)."""
    return {env for env, _, _ in _rows(Settings, ENV_PREFIX)}


def faust_env_names() -> set[str]:
    """Environment variables of Faust's settings under our prefix."""
    import faust

    from flts_streams.core.settings import FAUST_ENV_PREFIX

    return {f"{FAUST_ENV_PREFIX}_{p.env_name}" for p in faust.Settings.SETTINGS.values() if p.env_name}


def known_env_names() -> set[str]:
    """Every environment variable the worker reads: our settings plus Faust's under our prefix."""
    return our_env_names() | faust_env_names()
