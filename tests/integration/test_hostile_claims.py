"""Hostile claims against the real worker: one bad message never costs another (docs/RELIABILITY.md, 6b-6c)."""
from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import requests

from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import claim, consume, poll, produce, put_object

pytestmark = pytest.mark.integration


def _results(bootstrap: str, run: str) -> set[str]:
    return {r["value"]["claim"]["claim_id"] for r in consume(bootstrap, "inference-results", None, timeout=30)
            if str(r["value"]["claim"]["claim_id"]).startswith(run)}


def test_an_oversized_poison_claim_costs_none_of_its_batch(worker, broker):
    """Measured before: 2 good claims, 800,000 bytes of junk, 6 good on one key: 7 of 9 got nothing, offsets committed past."""
    run = f"big-{uuid.uuid4().hex[:6]}"
    ident = f"{run}-site"
    put_object(worker.var_dir / "objects", f"{ident}.parquet", demo_frame(days=1, seed=3))
    good = [(ident.encode(), claim(ident, f"{ident}.parquet", claim_id=f"{run}-{n}"), None) for n in range(8)]
    junk = b"\xff" * 800_000
    huge_id = claim(ident, f"{ident}.parquet", claim_id=f"{run}-huge-" + "x" * 900_000)  # a result would echo it
    produce(broker.bootstrap, "inference-data",
            [*good[:2], (ident.encode(), junk, None), (b"k" * 900_000, b"{}", None), (ident.encode(), huge_id, None), *good[2:]])
    done = poll(lambda: r if len(r := _results(broker.bootstrap, run)) >= 8 else None, timeout=120)
    assert done == {f"{run}-{n}" for n in range(8)}
    letters = [r["value"] for r in consume(broker.bootstrap, "flts-dead-letter", None, timeout=30)]
    big = [d for d in letters if d.get("value_size") == 800_000]
    assert len(big) == 1 and big[0]["truncated"] is True
    stored = worker.var_dir / "objects" / big[0]["original"]["bucket"] / big[0]["original"]["value_object"]
    assert stored.read_bytes() == junk, "the whole original is kept in the object store"
    assert any(d.get("key_size") == 900_000 and d["original"]["key_object"] for d in letters)
    assert any(d["error_type"] == "SchemaError" and "claim_id" in d["error"] and d.get("value_size", 0) > 900_000
               for d in letters), "the claim whose result would exceed the limit is dead-lettered"
    assert requests.get(worker.url + "/healthz", timeout=5).status_code == 200


def test_a_wide_object_is_served_and_the_table_keeps_the_models_columns(worker, broker):
    """11 features plus 200 extra columns x 1,100 rows made a 1.6 MB changelog record that crashed the worker."""
    run = f"wide-{uuid.uuid4().hex[:6]}"
    frame = demo_frame(days=2, seed=9).tail(1100).reset_index(drop=True)
    frame = pd.concat([frame, pd.DataFrame({f"extra_{i}": np.full(len(frame), float(i)) for i in range(200)})], axis=1)
    put_object(worker.var_dir / "objects", f"{run}.parquet", frame)
    produce(broker.bootstrap, "inference-data", [(run.encode(), claim(run, f"{run}.parquet", claim_id=run), None)])
    poll(lambda: run in _results(broker.bootstrap, run), timeout=120)
    summary = poll(lambda: (r := requests.get(f"{worker.url}/frames/{run}", timeout=5)).status_code == 200 and r.json())
    assert len(summary["columns"]) == 11, summary
    assert requests.get(f"{worker.url}/predict/{run}", timeout=10).status_code == 200
    assert worker.process.poll() is None, "the worker is alive"
