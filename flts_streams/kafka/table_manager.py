"""Faust's table manager without the second it sleeps before registering the tables.

Why: ``faust.tables.TableManager.on_start`` sleeps 1.0 s before it registers the tables' changelog
channels (faust/tables/manager.py), and the Conductor subscribes, and so joins the consumer group,
only after that. Every table of this app is declared when the app module is imported, long before
the worker starts, so the second only delays readiness (and each rebalance test's start-ups).
Otherwise the same steps, in the same order. Pinned by tests/test_flts_streams/test_kafka/test_table_manager.py.
"""

from __future__ import annotations

from faust.tables import TableManager


class PromptTableManager(TableManager):
    """TableManager whose on_start registers the tables at once."""

    async def on_start(self) -> None:
        """Register the tables' channels and start recovery (Faust's on_start minus its 1 s sleep)."""
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()
