"""Start-up heap handling of the worker: frozen heap, rarer young collections."""

from __future__ import annotations

import gc

from flts_streams.core.process_tuning import GC_THRESHOLDS, freeze_startup_heap

CPYTHON_DEFAULT = (700, 10, 10)


def test_startup_heap_is_frozen_and_young_collections_run_less_often():
    before = gc.get_threshold()  # other in-process app starts in the suite may have set ours already
    try:
        gc.set_threshold(*CPYTHON_DEFAULT)
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] > CPYTHON_DEFAULT[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
