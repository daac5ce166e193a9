"""The table manager: Faust's, minus the 1 s sleep before the tables are registered (pinned against Faust's code)."""

from __future__ import annotations

import inspect

import faust
from faust.tables import TableManager

from flts_streams.core.settings import Settings
from flts_streams.kafka.table_manager import PromptTableManager

SLEEP = "await self.sleep(1.0)"


def _body(method: object) -> list[str]:
    """The statements of ``method`` (its source without the signature and docstring), stripped."""
    lines = [line.strip() for line in inspect.getsource(method).splitlines()[1:]]  # type: ignore[arg-type]
    return [line for line in lines if line and not line.startswith('"""')]


def test_faust_still_sleeps_a_second_before_registering_the_tables():
    # The behaviour worked around: when Faust drops or changes the sleep, this fails and the class may go.
    assert SLEEP in _body(TableManager.on_start)


def test_ours_does_what_faust_does_minus_the_sleep():
    assert _body(PromptTableManager.on_start) == [line for line in _body(TableManager.on_start) if line != SLEEP]


def test_the_app_uses_our_table_manager():
    assert Settings().faust_defaults()["TableManager"] == "flts_streams.kafka.table_manager:PromptTableManager"
    app = faust.App("test-table-manager", **Settings().faust_defaults())
    assert app.conf.TableManager is PromptTableManager
    from flts_streams.app import app as service

    assert isinstance(service.tables, PromptTableManager)
