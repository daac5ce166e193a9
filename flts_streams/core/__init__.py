"""Core of the worker: settings (the only reader of the environment), errors, metrics, schemas, process helpers."""
