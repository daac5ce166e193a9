"""The table manager: Faust's, minus the 1 s sleep before the tables are registered (pinned against Faust's code)."""

from __future__ import annotations

import faust
from faust.tables import TableManager

from flts_streams.core.settings import Settings
from flts_streams.kafka.table_manager import PromptTableManager
from tests.test_flts_streams.helpers import source_statements

SLEEP = "await self.sleep(1.0)"


def test_faust_still_sleeps_a_second_before_registering_the_tables():
    # The behaviour worked around: when Faust drops or changes the sleep, this fails and the class may go.
    assert SLEEP in source_statements(TableManager.on_start)


def test_ours_does_what_faust_does_minus_the_sleep():
    faust_s = source_statements(TableManager.on_start)
    assert source_statements(PromptTableManager.on_start) == [line for line in faust_s if line != SLEEP]


def test_the_app_uses_our_table_manager():
    assert Settings().faust_defaults()["TableManager"] == "flts_streams.kafka.table_manager:PromptTableManager"
    app = faust.App("test-table-manager", **Settings().faust_defaults())
    assert app.conf.TableManager is PromptTableManager
    from flts_streams.app import app as service

    assert isinstance(service.tables, PromptTableManager)
