"""flts-streams: streaming time-series forecasting as one Faust worker.

``faust -A flts_streams worker`` reads ``flts_streams.app``, built on first access: importing any
submodule (settings, errors, the MLflow model, the command line) builds nothing and imports
neither faust nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flts_streams.app import FltsApp

    app: FltsApp

__all__ = ("app",)


def __getattr__(name: str) -> Any:
    """The Faust app, built when first asked for (the deployment contract of ``faust -A flts_streams``)."""
    if name == "app":
        from flts_streams.app import app

        # Importing the submodule bound the name ``app`` here to the module flts_streams.app; the
        # package attribute must be the app (faust's find_app refuses a module: "Looks like module").
        globals()["app"] = app
        return app
    raise AttributeError(f"module 'flts_streams' has no attribute {name!r}")
