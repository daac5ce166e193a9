"""Calendar features and the JSON scaler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flts_streams.core.errors import InvalidInput
from flts_streams.forecasting.features import time_features
from flts_streams.forecasting.scaler import Scaler


def test_minute_of_day_and_day_of_week():
    ts = np.array(["2024-01-01T00:00", "2024-01-01T06:00", "2024-01-06T12:00"], dtype="datetime64[ns]")  # Mon, Mon, Sat
    f = time_features(ts, ["minute_of_day", "day_of_week"])
    assert f.shape == (3, 4)
    assert f[0, 0] == pytest.approx(0.0) and f[0, 1] == pytest.approx(1.0)  # midnight
    assert f[1, 0] == pytest.approx(1.0, abs=1e-6)  # 06:00 is a quarter of a day
    assert f[0, 2] == pytest.approx(0.0) and f[0, 3] == pytest.approx(1.0)  # Monday is phase 0
    assert f[2, 2] == pytest.approx(np.sin(2 * np.pi * 5 / 7), abs=1e-6)  # Saturday


def test_day_of_year_and_unknown():
    ts = np.array(["2024-01-01", "2024-07-01"], dtype="datetime64[ns]")
    f = time_features(ts, ["day_of_year"])
    assert f[0, 0] == pytest.approx(0.0)
    with pytest.raises(InvalidInput):
        time_features(ts, ["fortnight"])


def test_scaler_round_trip_is_exact_and_json_plain():
    rng = np.random.default_rng(0)
    x = rng.lognormal(18, 1.0, size=(500, 3))
    x[:, 2] = 5.0  # constant column
    s = Scaler.fit(["a", "b", "c"], x)
    z = s.transform(x)
    assert np.allclose(z[:, :2].mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(s.inverse(z), x, rtol=1e-12)
    again = Scaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s
    np.testing.assert_allclose(again.inverse(z[:, [1]], ["b"]), x[:, [1]], rtol=1e-12)
