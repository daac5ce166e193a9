"""flts-streams: streaming time-series forecasting as one Faust worker."""
from flts_streams.app import app

__all__ = ("app",)
