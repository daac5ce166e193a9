"""The native records splice (flts_streams/forecasting/_records_json.c): orjson's bytes, and a clear error otherwise.

Forecasts through it are compared with orjson.dumps of their records in test_forecast.py.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from flts_streams.forecasting._records_json import splice

STAMPS = ["2024-01-01T00:02:00", "2024-01-01T00:04:00", "2024-01-01T00:06:00"]


def _dump(values: np.ndarray) -> bytes:
    return orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)


def _records(values: np.ndarray, names: list[str]) -> bytes:
    return orjson.dumps(
        [{"ts": ts, **{name: values[j, i] for j, name in enumerate(names)}} for i, ts in enumerate(STAMPS)]
    )


@pytest.mark.parametrize("names", [["down"], ["down", "up"], ['a "quoted", odd]name', "é"]])
@pytest.mark.parametrize("groups", [1, 3])
def test_each_group_is_the_dump_of_its_records(names, groups):
    rng = np.random.default_rng(len(names) + groups)
    values = rng.normal(0, 1e9, size=(groups * len(names), len(STAMPS)))
    values[0, 1] = np.nan  # orjson writes null for a non-finite value: so does the splice
    values[-1, 0] = -np.inf
    out = splice(_dump(values), STAMPS, b'"ts"', tuple(orjson.dumps(n) for n in names))
    assert out == [_records(np.where(np.isfinite(v), v, None), names) for v in np.split(values, groups)]


@pytest.mark.parametrize(
    ("dumped", "targets"),
    [
        (b"", 1),
        (b"[]", 1),
        (b"[[]]", 1),
        (b"[[1,2,3]", 1),
        (b"[[1,2,3],[4,5,6]]", 3),  # two rows of three: not whole groups of three targets
        (b"[[1,2],[3,4,5]]", 1),
        (b"[[1,2,3,4]]", 1),
        (b"[[1,,3]]", 1),
        (b"[[1,2,3]]]", 1),
        (b"[[[1,2,3]]]", 1),
        (b"[[1,2,3],4,5,6]]", 1),
    ],
)
def test_a_dump_of_another_shape_is_a_value_error_not_a_crash(dumped, targets):
    with pytest.raises(ValueError):
        splice(dumped, STAMPS, b'"ts"', tuple(orjson.dumps(f"t{j}") for j in range(targets)))


def test_wrong_argument_types_and_non_ascii_stamps_are_refused():
    with pytest.raises(TypeError):
        splice("[[1,2,3]]", STAMPS, b'"ts"', (b'"down"',))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        splice(b"[[1,2,3]]", STAMPS, b'"ts"', ("down",))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        splice(b"[[1,2,3]]", [*STAMPS[:2], "2024-01-01T00:06:00é"], b'"ts"', (b'"down"',))
    with pytest.raises(ValueError):
        splice(b"[[1,2,3]]", [], b'"ts"', (b'"down"',))
