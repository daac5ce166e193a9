"""Hostile claims against the real worker: one bad message never costs another (docs/RELIABILITY.md, 10a-c, 10i)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
import requests

from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import claim, consume, poll, produce, put_object

pytestmark = pytest.mark.integration


def _results(bootstrap: str, run: str) -> set[str]:
    return {
        r["value"]["claim"]["claim_id"]
        for r in consume(bootstrap, "inference-results", None, timeout=30)
        if str(r["value"]["claim"]["claim_id"]).startswith(run)
    }


def test_an_oversized_poison_claim_costs_none_of_its_batch(worker, broker):
    """Before: 2 good claims, 800,000 bytes of junk, 6 good on one key: 7 of 9 got nothing, offsets committed past."""
    run = f"big-{uuid.uuid4().hex[:6]}"
    ident = f"{run}-site"
    put_object(worker.var_dir / "objects", f"{ident}.parquet", demo_frame(days=1, seed=3))
    good = [(ident.encode(), claim(ident, f"{ident}.parquet", claim_id=f"{run}-{n}"), None) for n in range(8)]
    junk = b"\xff" * 800_000
    huge_id = claim(ident, f"{ident}.parquet", claim_id=f"{run}-huge-" + "x" * 900_000)  # a result would echo it
    produce(
        broker.bootstrap,
        "inference-data",
        [
            *good[:2],
            (ident.encode(), junk, None),
            (b"k" * 900_000, b"{}", None),
            (ident.encode(), huge_id, None),
            *good[2:],
        ],
    )
    done = poll(lambda: r if len(r := _results(broker.bootstrap, run)) >= 8 else None, timeout=120)
    assert done == {f"{run}-{n}" for n in range(8)}
    letters = [r["value"] for r in consume(broker.bootstrap, "flts-dead-letter", None, timeout=30)]
    big = [d for d in letters if d.get("value_size") == 800_000]
    assert len(big) == 1 and big[0]["truncated"] is True
    stored = worker.var_dir / "objects" / big[0]["original"]["bucket"] / big[0]["original"]["value_object"]
    assert stored.read_bytes() == junk, "the whole original is kept in the object store"
    assert any(d.get("key_size") == 900_000 and d["original"]["key_object"] for d in letters)
    assert any(
        d["error_type"] == "SchemaError" and "claim_id" in d["error"] and d.get("value_size", 0) > 900_000
        for d in letters
    ), "the claim whose result would exceed the limit is dead-lettered"
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


def test_a_mixed_hostile_stream_loses_no_valid_claim_and_keeps_health_answering(worker, broker):
    """Poison claims and hostile bodies at once: valid claims all answered, /healthz never frozen, memory bounded."""
    import io
    import socket
    import statistics
    import threading
    import time
    import zlib

    import psutil
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = f"mix-{uuid.uuid4().hex[:6]}"
    idents = [f"{run}-{i}" for i in range(5)]
    for i, ident in enumerate(idents):
        put_object(worker.var_dir / "objects", f"{ident}.parquet", demo_frame(days=1, seed=20 + i))
    rows = 2_000_000  # a small file that decodes to 2 million rows: refused from its footer
    bomb = io.BytesIO()
    pq.write_table(
        pa.table({"time": pa.array(np.zeros(rows, dtype="datetime64[s]")), "down": pa.array(np.ones(rows))}), bomb
    )
    (worker.var_dir / "objects" / "flts" / f"{run}-bomb.parquet").write_bytes(bomb.getvalue())
    poison = [
        (b"p", b"\xff" * 700_000, None),
        (b"p", claim(run, f"{run}-bomb.parquet"), None),
        (b"p", claim(run, "missing.parquet"), None),
        (b"p", claim(run, "../etc/passwd"), None),
    ]
    valid = [
        (idents[n % 5].encode(), claim(idents[n % 5], f"{idents[n % 5]}.parquet", claim_id=f"{run}-{n}"), None)
        for n in range(100)
    ]
    messages = [m for n in range(100) for m in ([valid[n]] + ([poison[n // 25]] if n % 25 == 0 else []))]

    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            requests.get(worker.url + "/healthz", timeout=10)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)

    def hostile_bodies() -> None:
        gz = zlib.compressobj(9, zlib.DEFLATED, 31)
        gzip_bomb = b"".join(gz.compress(bytes(1 << 20)) for _ in range(64)) + gz.flush()
        free_form = json.dumps({"data": {"time": ["Feb 05 2018 11:40PM"] * 20000, "down": [1.0] * 20000}})
        slow = [socket.create_connection(("127.0.0.1", worker.port)) for _ in range(20)]
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(5):
            for body, headers in (
                (gzip_bomb, {"Content-Encoding": "gzip"}),
                (free_form, {}),
                (b'{"inference_length": ' + b"9" * 5000 + b"}", {}),
            ):
                r = requests.post(
                    worker.url + "/predict",
                    data=body,
                    timeout=30,
                    headers={"Content-Type": "application/json", **headers},
                )
                assert 400 <= r.status_code < 500, r.status_code
        for s in slow:
            s.close()

    threading.Thread(target=probe, daemon=True).start()
    attacker = threading.Thread(target=hostile_bodies)
    attacker.start()
    produce(broker.bootstrap, "inference-data", messages)
    done = poll(lambda: r if len(r := _results(broker.bootstrap, run)) >= 100 else None, timeout=180)
    attacker.join(60)
    stop.set()
    assert done == {f"{run}-{n}" for n in range(100)}, "every valid claim is answered"
    letters = [r["value"] for r in consume(broker.bootstrap, "flts-dead-letter", None, timeout=30)]
    assert any(d["error_type"] == "ObjectTooLarge" and "2000000 rows" in d["error"] for d in letters)
    rss = psutil.Process(worker.process.pid).memory_info().rss
    assert rss < 1.5 * 1024**3, f"worker RSS {rss >> 20} MiB"
    p99 = statistics.quantiles(latencies, n=100)[98]
    # Measured (docs/RELIABILITY.md 10i); asserted loosely: the suite runs on busy machines, and this catches the
    # multi-second freezes (a gzip bomb inflated on the event loop froze it for 6-7 s).
    assert p99 < 1.0, f"/healthz p99 {p99 * 1000:.0f} ms under the hostile mix"
    print(f"/healthz p99 {p99 * 1000:.1f} ms over {len(latencies)} probes")  # shown with pytest -s
