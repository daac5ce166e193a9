"""History features: what a request of so many rows carries, with fallbacks where it carries too little."""

from __future__ import annotations

import numpy as np

from flts_streams.forecasting.history import history_features, history_size

DAY, W, H = 24, 4, 3  # a 24-row "day" keeps the arithmetic checkable by hand


def _features(y, at, days=2, halfwidth=0):
    return history_features(
        np.asarray(y, dtype=np.float64),
        np.asarray(at),
        window=W,
        horizon=H,
        per_day=DAY,
        days=days,
        halfwidth=halfwidth,
    )


def test_a_window_alone_falls_back_to_its_level_and_says_no_day_was_found():
    y = np.arange(10.0)
    f = _features(y, [10])[0]
    level = y[-W:].mean()
    assert f.shape == (history_size(H),)
    np.testing.assert_allclose(f[:H], level)  # profile at the future slots
    np.testing.assert_allclose(f[H + 1 : 2 * H + 1], level)  # the day before
    assert f[-1] == 0.0  # share of days found


def test_the_profile_is_the_mean_of_the_same_slots_on_earlier_days():
    slots = np.arange(DAY, dtype=np.float64)
    y = np.concatenate([slots, slots + 100, slots + 200])  # three days; each day's level 100 higher
    at = 2 * DAY + 10  # forecast slots 10, 11, 12 of the third day
    f = _features(y, [at], days=2)[0]
    np.testing.assert_allclose(f[:H], [60.0, 61.0, 62.0])  # mean of days 1 and 2 at slots 10-12
    np.testing.assert_allclose(f[H + 1 : 2 * H + 1], [110.0, 111.0, 112.0])  # the day before
    assert f[-1] == 1.0  # both days found (the window's slots two days back lie before the rows read)
    assert _features(y[DAY:], [DAY + 10], days=2)[0][-1] == 0.5


def test_only_the_rows_a_request_of_that_many_days_carries_are_read():
    rng = np.random.default_rng(0)
    y = rng.normal(size=5 * DAY)
    at = 4 * DAY + 5
    base = _features(y, [at], days=2, halfwidth=1)
    older = y.copy()
    older[: at - 2 * DAY] = 1e9  # beyond the two days read
    # Equal but for the rounding of the running sum the means are taken from.
    np.testing.assert_allclose(_features(older, [at], days=2, halfwidth=1), base, rtol=1e-4, atol=1e-5)
    newer = y.copy()
    newer[at:] = 1e9  # the future itself
    np.testing.assert_allclose(_features(newer, [at], days=2, halfwidth=1), base, rtol=1e-4, atol=1e-5)


def test_many_origins_at_once_equal_one_at_a_time():
    y = np.random.default_rng(1).normal(size=4 * DAY)
    at = np.arange(W, len(y), 5)
    together = _features(y, at, days=3, halfwidth=2)
    alone = np.concatenate([_features(y[:t], [t], days=3, halfwidth=2) for t in at])
    np.testing.assert_allclose(together, alone, rtol=1e-6)


def test_the_cheap_path_for_short_series_equals_the_general_one():
    from flts_streams.forecasting.history import window_only_features

    for n in (5, W, W + 1, DAY // 4 + 1, DAY - W - 1):
        ys = np.random.default_rng(n).normal(size=(3, n))  # a stack of series of one length, as a batch has
        cheap = window_only_features(ys, window=W, horizon=H, per_day=DAY)
        assert cheap is not None
        general = np.concatenate([_features(y, [n], days=2, halfwidth=1) for y in ys])
        np.testing.assert_allclose(cheap, general, rtol=1e-6)
    assert window_only_features(np.zeros((1, DAY)), window=W, horizon=H, per_day=DAY) is None  # long: general


def test_origins_are_taken_in_chunks_with_the_same_result():
    y = np.random.default_rng(3).normal(size=3 * DAY)
    at = np.arange(W, len(y))
    from flts_streams.forecasting import history

    whole = _features(y, at, days=2, halfwidth=1)
    real = history._chunks
    try:
        history._chunks = lambda a, size=7: real(a, size)  # noqa: SLF001 - force many small chunks
        np.testing.assert_array_equal(_features(y, at, days=2, halfwidth=1), whole)
    finally:
        history._chunks = real
