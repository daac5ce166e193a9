"""Claims decoding, deadlines, dead letters, object keys, local store, frame codec."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest

from flts_streams.core.errors import InvalidInput, InvalidObjectKey, ObjectNotFound, ObjectTooLarge, SchemaError
from flts_streams.core.settings import Settings
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.spec import FEATURES
from flts_streams.streaming.claim_messages import Coordinates, deadline_of, decode_claim, expired
from flts_streams.streaming.claim_objects import frame_from_object
from flts_streams.streaming.dead_letters import dead_letter
from flts_streams.streaming.frame_codec import decode_frame, encode_frame
from flts_streams.streaming.object_store import LocalStore, allowed_bucket, validate_key


def test_decode_claim_accepts_object_alias():
    c = decode_claim(b'{"identifier": "A", "bucket": "b", "object": "x/y.parquet"}')
    assert (c.identifier, c.bucket, c.object_key) == ("A", "b", "x/y.parquet")
    assert decode_claim(b'{"identifier": "A", "object_key": "k"}').object_key == "k"


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"identifier": "A"}', b'{"identifier": 5, "object_key": "k"}']
)
def test_decode_claim_rejects_bad_messages(raw):
    with pytest.raises(SchemaError):
        decode_claim(raw)


def test_deadlines():
    assert deadline_of([("deadline_ms", b"1000")]) == 1000
    assert deadline_of({"deadline_ms": b"nope"}) is None
    assert deadline_of(None) is None
    assert expired(1000, now_ms=2000) and not expired(3000, now_ms=2000) and not expired(None)


def test_dead_letter_carries_bytes_error_and_coordinates():
    payload = json.loads(dead_letter(b"\x00bad", b"A", SchemaError("boom"), Coordinates("inference-data", 2, 41)))
    assert base64.b64decode(payload["value_b64"]) == b"\x00bad"
    assert payload["source"] == {"topic": "inference-data", "partition": 2, "offset": 41}
    assert payload["error_type"] == "SchemaError" and "boom" in payload["error"]


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a//b", "a/./b", "", "a\\b"])
def test_object_keys_cannot_escape(key, tmp_path):
    with pytest.raises(InvalidObjectKey):
        validate_key(key)
    with pytest.raises(InvalidObjectKey):
        LocalStore(tmp_path).get("flts", key)


def test_local_store_round_trip_and_missing(tmp_path):
    store = LocalStore(tmp_path)
    store.put("flts", "a/b.bin", b"hello")
    assert store.get("flts", "a/b.bin") == b"hello"
    with pytest.raises(ObjectNotFound):
        store.get("flts", "a/missing.bin")
    store.put("flts", "a/c/d.bin", b"x")
    assert store.list("flts", "a/") == ["a/b.bin", "a/c/d.bin"] and store.list("flts", "z/") == []
    with pytest.raises(InvalidObjectKey):
        store.list("flts", "../")


def test_bucket_allow_list():
    s = Settings()
    assert allowed_bucket(s, None) == "flts"
    with pytest.raises(InvalidObjectKey, match="not allowed"):
        allowed_bucket(s, "other")


def test_frame_from_parquet_and_csv_and_codec():
    df = demo_frame(days=1, seed=3)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    from_parquet = frame_from_object(buf.getvalue(), "x.parquet", FEATURES)
    from_csv = frame_from_object(df.to_csv(index=False).encode(), "x.csv", FEATURES)
    np.testing.assert_allclose(from_parquet.values, from_csv.values, rtol=1e-9)
    back = decode_frame(encode_frame(from_parquet.tail(100)))
    assert back.columns == from_parquet.columns and back.cadence == from_parquet.cadence
    np.testing.assert_array_equal(back.values, from_parquet.values[-100:])
    np.testing.assert_array_equal(back.timestamps, from_parquet.timestamps[-100:])
    with pytest.raises(InvalidInput):
        frame_from_object(b"\x00\x01garbage", "x.parquet")


def _parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_object_limits_are_checked_before_decoding():
    """A 562 KB Parquet of 10^7 constant rows grew a worker by 3.5 GB when decoded whole."""
    import resource

    import pyarrow as pa

    from flts_streams.streaming.claim_objects import ObjectLimits, read_table

    rows = 10_000_000
    small = _parquet_bytes(
        pa.table({"time": pa.array(np.zeros(rows, dtype="datetime64[s]")), "down": pa.array(np.ones(rows))})
    )
    assert len(small) < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(
        ObjectTooLarge, match=r"10000000 rows, above the limit of 100000 \(FLTS_STREAMING__OBJECT_MAX_ROWS\)"
    ):
        read_table(small, "bomb.parquet", ObjectLimits(max_rows=100_000))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000, (
        "KiB: refused from the footer, not decoded"
    )
    wide = _parquet_bytes(pa.table({f"c{i}": pa.array([1.0]) for i in range(300)}))
    with pytest.raises(ObjectTooLarge, match="300 columns, above the limit of 256"):
        read_table(wide, "wide.parquet")
    csv = ("time,down\n" + "".join(f"2024-01-01 00:{i % 60:02d}:00,1\n" for i in range(5000))).encode()
    with pytest.raises(ObjectTooLarge, match="rows, above the limit of 1000"):
        read_table(csv, "long.csv", ObjectLimits(max_rows=1000))


def test_the_store_refuses_an_object_above_the_byte_limit_before_reading_it(tmp_path):
    store = LocalStore(tmp_path)
    store.put("flts", "big.bin", b"x" * 5000)
    with pytest.raises(ObjectTooLarge, match="5000 bytes, above the 4096-byte limit"):
        store.get("flts", "big.bin", max_bytes=4096)
    assert store.get("flts", "big.bin", max_bytes=5000) == b"x" * 5000


@pytest.mark.parametrize("with_proc", [True, False], ids=["fd-links", "resolved"])
def test_local_store_refuses_symlinks_out_of_the_bucket(tmp_path, with_proc):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    bucket = tmp_path / "store" / "flts"
    bucket.mkdir(parents=True)
    (bucket / "dir").symlink_to(outside, target_is_directory=True)
    (bucket / "file.bin").symlink_to(outside / "secret.bin")
    (bucket / "inner").mkdir()
    (bucket / "inner" / "x.bin").write_bytes(b"ok")
    (bucket / "alias").symlink_to(bucket / "inner", target_is_directory=True)  # inside: allowed
    fd_links = Path("/proc/self/fd") if with_proc else tmp_path / "no-such-dir"
    if with_proc and not fd_links.is_dir():
        pytest.skip("no /proc/self/fd on this OS: the resolved variant covers it")
    store = LocalStore(tmp_path / "store", fd_links=fd_links)
    for key in ("dir/secret.bin", "file.bin"):
        with pytest.raises(InvalidObjectKey, match="escapes bucket"):
            store.get("flts", key)
    for key in ("dir/new.bin", "dir/sub/new.bin"):
        with pytest.raises(InvalidObjectKey, match="escapes bucket"):
            store.put("flts", key, b"x")
    with pytest.raises(InvalidObjectKey, match="escapes bucket"):
        store.list("flts", "dir/")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.bin"]  # nothing written outside
    assert store.get("flts", "alias/x.bin") == b"ok"
    store.put("flts", "alias/y.bin", b"y")
    assert (bucket / "inner" / "y.bin").read_bytes() == b"y"


def test_local_store_overwrites_and_never_follows_a_planted_temp_link(tmp_path):
    store = LocalStore(tmp_path)
    store.put("flts", "a/b.bin", b"one")
    store.put("flts", "a/b.bin", b"two")
    assert store.get("flts", "a/b.bin") == b"two"
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    (tmp_path / "flts" / "a" / "c.bin.tmp").symlink_to(target)
    with pytest.raises(OSError):  # O_NOFOLLOW: the write does not go through the link
        store.put("flts", "a/c.bin", b"x")
    assert target.read_bytes() == b"keep"
    with pytest.raises(ObjectNotFound, match="is a prefix"):
        store.get("flts", "a")
    with pytest.raises(ObjectNotFound):
        store.get("flts", "a/b.bin/deeper")
