"""The native body parser reads what it accepts exactly as the Python path does, and gives up on the rest."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import struct
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest

from flts_bench.payloads import PayloadPool
from flts_streams.core.errors import FltsError
from flts_streams.core.settings import ServingSettings
from flts_streams.serving import predict_request
from flts_streams.serving.native_body import parse_body
from flts_streams.serving.predict_request import parse_predict, request_frame

LIMITS = ServingSettings()
BODY = PayloadPool(seed=1).payload(identifier="bench", inference_length=30)
FEATURES = tuple(c for c in BODY["data"] if c != "ts")


def _body(columns: dict, **fields: object) -> bytes:
    return json.dumps({"identifier": "A", **fields, "data": columns}).encode()


def _timestamps(rows: int) -> list[str]:
    start = dt.datetime(2024, 1, 1)
    return [(start + dt.timedelta(minutes=2 * i)).isoformat(sep=" ") for i in range(rows)]


def _column(parsed, name: str) -> np.ndarray:
    cols = parsed.data
    return cols.values[:, cols.names.index(name)] if name in cols.names else cols.times[name][0]


# A one-row window: the row minimum checked first would otherwise answer most hostile bodies alike.
ANY_WINDOW = SimpleNamespace(features=FEATURES, window=1, cadence_s=120.0)


def _outcome(body: bytes, native: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """What /predict makes of a body: the parsed fields and frame, or the error it answers with."""
    with monkeypatch.context() as m:
        if not native:
            m.setattr(predict_request, "parse_body", lambda body: None)
        try:
            req = parse_predict(body, "application/json", {}, LIMITS)
            fields = (req.identifier, req.index_col, req.inference_length, req.has_data)
            if not req.has_data:
                return ("ok", *fields)
            frame = request_frame(req, ANY_WINDOW)
        except FltsError as exc:
            return ("error", type(exc).__name__, str(exc))
    return ("ok", *fields, frame.timestamps.tobytes(), frame.columns, frame.values.tobytes(), frame.cadence)


def test_the_usual_payloads_take_the_native_path_and_give_the_same_frame(monkeypatch):
    pool = PayloadPool(seed=7)
    for i in range(20):
        body = orjson.dumps(pool.payload(identifier=f"site-{i}", inference_length=1 + i))
        req = parse_predict(body, "application/json", {}, LIMITS)
        assert req.native is not None and req.native.regular_frame(FEATURES, None) is not None, (
            "no fallback for the usual body"
        )
        assert _outcome(body, True, monkeypatch) == _outcome(body, False, monkeypatch)
        assert _outcome(body, True, monkeypatch)[0] == "ok"


def _number_tokens(rng: random.Random) -> list[str]:
    """Decimal texts across magnitudes and lengths, plus values near the halfway point between two doubles."""
    tokens = [
        "0",
        "-0",
        "0.0",
        "-0.0",
        "-0e3",
        "1",
        "-1",
        "1e23",
        "9007199254740993",
        "123456789012345678",
        "1234567890123456789",
        "12345678901234567890123",
        "4.35e-320",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "0.1",
        "0.3",
        "5e-324",
        "1E5",
        "1e+5",
        "1.5E-3",
        "0.000001234",
        "100000000000000000000000000000",
    ]
    for _ in range(3000):
        kind = rng.randrange(5)
        if kind == 0:
            tokens.append(repr(rng.uniform(-1e9, 1e9)))
        elif kind == 1:
            tokens.append(repr(rng.uniform(0, 1) * 10.0 ** rng.randint(-30, 30)))
        elif kind == 2:
            tokens.append(str(rng.randint(-(10 ** rng.randint(1, 22)), 10 ** rng.randint(1, 22))))
        elif kind == 3:
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
            point = rng.randint(0, len(digits))
            tokens.append(f"{digits[:point] or '0'}.{digits[point:] or '0'}".lstrip("0").replace("..", ".") or "0")
        else:  # an exact midpoint between two doubles, cut to 17-19 significant digits: the double-rounding trap
            x = rng.uniform(1, 2) * 10.0 ** rng.randint(-20, 20)
            mid = (Decimal(x) + Decimal(np.nextafter(x, np.inf))) / 2
            tokens.append(f"{mid:.{rng.randint(16, 18)}e}")
    return [t if not t.startswith(".") else "0" + t for t in tokens]


def test_numbers_read_bit_for_bit_as_orjson():
    tokens = _number_tokens(random.Random(5))
    native = 0
    for chunk in range(0, len(tokens), 50):
        part = tokens[chunk : chunk + 50]
        body = b'{"data": {"ts": %s, "x": [%s]}}' % (
            json.dumps(_timestamps(len(part))).encode(),
            ",".join(part).encode(),
        )
        parsed = parse_body(body)
        expected = orjson.loads(body)["data"]["x"]
        if parsed is None:  # only when some value is not a finite double
            assert not all(np.isfinite(float(v)) for v in expected), part
            continue
        native += 1
        assert _column(parsed, "x").tobytes() == struct.pack(f"{len(part)}d", *expected), part
    assert native >= len(tokens) // 50 - 2


def _long_tokens(rng: random.Random, count: int) -> list[str]:
    """16-19 significant digits, exponents over the 128-bit table's range and past it (the usual sensor values)."""
    tokens = []
    for _ in range(count):
        digits = str(rng.randrange(10**15, 10**19))[: rng.randint(16, 19)]
        if rng.random() < 0.5:  # a decimal point somewhere, as json.dumps writes floats
            point = rng.randint(1, len(digits))
            text = f"{digits[:point]}.{digits[point:] or '0'}"
        else:
            text = f"{digits[0]}.{digits[1:]}e{rng.randint(-45, 45)}"
        tokens.append(text if rng.random() < 0.8 else "-" + text)
    return tokens


def _halfway_tokens(rng: random.Random, count: int) -> list[str]:
    """Decimals within a few units of the 19th digit of a midpoint between two doubles: where rounding is decided."""
    tokens = []
    for _ in range(count):
        x = rng.uniform(1, 10) * 10.0 ** rng.randint(-38, 38)
        mid = (Decimal(x) + Decimal(np.nextafter(x, np.inf))) / 2
        _, digits, exponent = mid.normalize().as_tuple()
        cut = int("".join(map(str, digits[:19])).ljust(19, "0")) + rng.randint(-2, 2)
        tokens.append(f"{cut}e{exponent + len(digits) - 19}")
    return tokens


def _read(tokens: list[str]) -> list[float]:
    body = b'{"data": {"x": [%s]}}' % ",".join(tokens).encode()
    parsed = parse_body(body)
    assert parsed is not None, "finite values only: the native path reads them all"
    return _column(parsed, "x").tolist()


def test_long_numbers_round_as_python_does():
    """The Eisel-Lemire path (16-19 digits) against Python's correctly rounded float(), bit for bit."""
    rng = random.Random(20261206)
    tokens = _long_tokens(rng, 40_000) + _halfway_tokens(rng, 40_000)
    for chunk in range(0, len(tokens), 5_000):
        part = tokens[chunk : chunk + 5_000]
        got = _read(part)
        wrong = [(t, g) for t, g in zip(part, got) if struct.pack("d", g) != struct.pack("d", float(t))]
        assert not wrong, wrong[:5]


def test_the_power_of_ten_table_is_exact():
    """_native_body.c's POW10_128: each 10^e's top 128 bits, rounded down, as Python's integers give them."""
    source = (Path(predict_request.__file__).parent / "_native_body.c").read_text()
    rows = re.findall(r"\{0x([0-9A-F]{16})ULL, 0x([0-9A-F]{16})ULL\}, /\* 1e(-?\d+) \*/", source)
    exponents = [int(e) for _, _, e in rows]
    assert exponents == list(range(-40, 41)), "the table covers EL_MIN_EXP10..EL_MAX_EXP10 in order"
    for hi, lo, e in rows:
        assert (int(hi, 16) << 64 | int(lo, 16)) == _top_128_bits(int(e)), f"1e{e}"


def _top_128_bits(e: int) -> int:
    """floor(10^e * 2^s) for the s that makes it a 128-bit number (top bit set)."""
    if e >= 0:
        shift = 128 - (10**e).bit_length()
        return 10**e << shift if shift >= 0 else 10**e >> -shift
    den = 10**-e  # 2^(b-1) < den < 2^b, so 2^(127+b) / den lies in (2^127, 2^128)
    return (1 << (127 + den.bit_length())) // den


def _random_timestamp(rng: random.Random) -> str:
    day = dt.date(1678, 1, 1) + dt.timedelta(days=rng.randrange((dt.date(2261, 12, 31) - dt.date(1678, 1, 1)).days))
    text = day.isoformat()
    shape = rng.randrange(4)
    if shape:
        text += rng.choice(" T") + f"{rng.randrange(24):02d}:{rng.randrange(60):02d}"
    if shape >= 2:
        text += f":{rng.randrange(60):02d}"
    if shape == 3:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
    return text


@pytest.mark.parametrize(
    "bad",
    [
        "2023-02-29",
        "1900-02-29",
        "2100-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-04-31",
        "2024-01-01 24:00",
        "2024-01-01 10:60",
        "2024-01-01 10:00:60",
        "1677-12-31",
        "2262-01-01",
        "2024-1-01",
        "2024-01-01 10",
        "2024-01-01 ",
        "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00+01:00",
        "2024-01-01 10:00:00.",
        "20240101",
        "2024-01-01 10:00:00.1234567890",
        "１９９９-01-01",
    ],
)
def test_timestamps_outside_the_strict_format_fall_back(bad, monkeypatch):
    body = _body({"ts": ["2024-01-01 00:00:00", bad], "down": [1.0, 2.0]})
    assert parse_body(body) is None
    assert _outcome(body, True, monkeypatch) == _outcome(body, False, monkeypatch)


def test_timestamps_read_as_numpy_reads_them():
    rng = random.Random(11)
    texts = [_random_timestamp(rng) for _ in range(3000)] + [
        "2000-02-29",
        "1900-02-28",
        "2024-02-29 23:59:59.999999999",
    ]
    parsed = parse_body(_body({"ts": texts}))
    assert parsed is not None
    np.testing.assert_array_equal(_column(parsed, "ts"), np.array(texts, dtype="datetime64[ns]"))


def _hostile_bodies(rng: random.Random) -> list[bytes]:
    good = orjson.dumps(BODY)
    handmade = [
        b"",
        b"{}",
        b"[]",
        b"null",
        b'{"data": null}',
        b'{"data": {}}',
        b'{"identifier": "A"} x',
        b'{"identifier": "A",}',
        b'{"identifier": "A", "identifier": "B"}',
        b'{"identifier": "\\u0041"}',
        b'{"identifier": ""}',
        b'{"identifier": "%s"}' % (b"x" * 201),
        b'{"identifier": 5}',
        b'{"inference_length": 0}',
        b'{"inference_length": -0}',
        b'{"inference_length": 10001}',
        b'{"inference_length": 5.0}',
        b'{"inference_length": 05}',
        b'{"extra": 1}',
        b'{"identifier": "\xff"}',
        b'{"identifier": "\xed\xa0\x80"}',
        b"\xef\xbb\xbf{}",
        b'{"index_col": "time"}',
        _body({"ts": _timestamps(3), "down": [1, 2, None]}),
        _body({"ts": _timestamps(3), "down": [1, 2]}),
        _body({"ts": _timestamps(3), "down": []}),
        _body({"ts": _timestamps(3), "down": [1, 2, "3"]}),
        _body({"ts": _timestamps(3), "down": [1, 2, [3]]}),
        _body({"ts": _timestamps(3)[::-1], "down": [1, 2, 3]}),
        _body({"ts": _timestamps(3)[:1] * 3, "down": [1, 2, 3]}),
        _body({"ts": [1, 2, 3], "down": [1, 2, 3]}),
        _body({"time": _timestamps(3), "down": [1, 2, 3]}, index_col="time"),
        _body({"down": [1, 2, 3]}),
        _body({"ts": _timestamps(3), "down": [1, 2, 3], "site": ["a", "b", "c"]}),
        _body({"ts": _timestamps(3), "dówn": [1, 2, 3]}),
        _body({"ts": _timestamps(1), "down": [1]}),
        b'{"data": {"ts": ["2024-01-01", "2024-01-02"], "down": [1, NaN]}}',
        b'{"data": {"ts": ["2024-01-01"], "down": [1e400]}}',
        b'{"data": {"ts": ["2024-01-01"], "down": [-Infinity]}}',
        b'{"data": {"ts": ["2024-01-01"], "ts": ["2024-01-02"]}}',
        b'{"data": {"ts": ["2024-01-01", "2024-01-02"], "down": [1, 2]}, "data": null}',
        b'{"data": {"ts": ["2024-01-01", "2024-01-02"], "down": [1, 2.]}}',
        b'{"data": {"ts": ["2024-01-01", "2024-01-02"], "down": [1, .5]}}',
        b'{"data": {"ts": ["2024-01-01", "2024-01-02"], "down": [1, +5]}}',
        b'{"data": {"ts": ["2024-01-01", "2024-01-02"], "down": [1, 0x5]}}',
        b' \t\r\n{ "data" : { "ts" : [ "2024-01-01" , "2024-01-02" ] , "down" : [ 1 , 2 ] } } \n',
        good,
        good[:-1],
        good + b",",
        good.replace(b'"down"', b'"up"', 1),
    ]
    truncated = [good[:i] for i in range(0, len(good), 13)]
    alphabet = b'\\{}[],:-+.eE0123456789 "\x00\xff\n'
    mutated = []
    for _ in range(1500):
        i = rng.randrange(len(good))
        mutated.append(good[:i] + bytes([rng.choice(alphabet)]) + good[i + rng.randint(0, 2) :])
    return handmade + truncated + mutated


def test_hostile_bodies_get_exactly_what_the_python_path_gives(monkeypatch):
    bodies = _hostile_bodies(random.Random(3))
    native = 0
    for body in bodies:
        assert _outcome(body, True, monkeypatch) == _outcome(body, False, monkeypatch), body[:200]
        native += parse_body(body) is not None
    assert 20 < native < len(bodies) // 2  # both paths were exercised


def test_large_bodies_parse_whole():
    rows = 20_000
    body = _body({"ts": _timestamps(rows), **{f"c{i}": list(range(rows)) for i in range(12)}})
    parsed = parse_body(body)
    assert parsed is not None and len(parsed.data.names) == 12 and parsed.data.times["ts"][1] == 120 * 10**9
    np.testing.assert_array_equal(_column(parsed, "c11"), np.arange(rows, dtype=np.float64))


def test_anything_but_bytes_is_a_type_error():
    with pytest.raises(TypeError):
        parse_body("{}")  # type: ignore[arg-type]


def test_a_bounded_fuzz_run_under_asan_and_ubsan_finds_nothing():
    """tests/fuzz_native_body.py (`make fuzz-body-parser` runs longer); it once aborted on a 19-digit horizon."""
    from tests.fuzz_native_body import run

    result = run(seconds=8, seed=20261205)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no undefined behaviour" in result.stdout
