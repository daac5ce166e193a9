"""Fault injection for a worker started with this folder on PYTHONPATH: every MLflow model load sleeps first.

Python imports ``sitecustomize`` at start-up; the delay (seconds) comes from SLOW_MODEL_LOAD_S.
Used by tests/integration/test_reliability.py to hold a restarted worker in its initial model load.
"""

import os
import time

import mlflow.pyfunc

_load_model = mlflow.pyfunc.load_model


def _slow_load_model(*args, **kwargs):
    time.sleep(float(os.environ["SLOW_MODEL_LOAD_S"]))
    return _load_model(*args, **kwargs)


mlflow.pyfunc.load_model = _slow_load_model
