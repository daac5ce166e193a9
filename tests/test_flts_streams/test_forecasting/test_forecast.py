"""Forecast API: timestamp placement, original units, horizon errors, determinism."""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from flts_streams.core.errors import HorizonTooLong, InvalidInput, NotEnoughRows
from flts_streams.forecasting.demo import demo_frame
from flts_streams.forecasting.forecast import Forecast, Forecaster
from flts_streams.forecasting.frame import prepare_frame
from flts_streams.forecasting.graph import TRACE_LOCK, ServingGraph, _shared_graph
from flts_streams.forecasting.model import build_net
from flts_streams.forecasting.scaler import Scaler
from flts_streams.forecasting.spec import FEATURES, ModelSpec


@pytest.fixture(scope="module")
def frame():
    return prepare_frame(demo_frame(days=2, seed=1), required=FEATURES, impute=True)


# The model this project trains since issue 25: history, quantiles, log targets, an ensemble.
RICH = {"history_days": 1, "quantiles": (0.1, 0.9), "log_targets": True, "members": 2}


def _spec(frame, kind="lstm", time_features=("minute_of_day",), **extra):
    return ModelSpec(
        kind=kind,
        features=FEATURES,
        targets=("down", "up"),
        window=30,
        horizon=10,
        cadence_s=120.0,
        scaler=Scaler.fit(FEATURES, _model_space(frame, extra.get("log_targets", False))),
        time_features=time_features,
        **extra,
    )


def _model_space(frame, log_targets: bool) -> np.ndarray:
    """The features as a log-space model reads them (targets down and up as logs), for fitting its scaler."""
    values = frame.select(FEATURES).copy()
    if log_targets:
        for column in ("down", "up"):
            j = FEATURES.index(column)
            values[:, j] = np.log(np.maximum(values[:, j], 1.0))
    return values


def _forecaster(frame, kind="lstm", seed=0):
    spec = _spec(frame, kind)
    return Forecaster(spec, build_net(spec, seed))


def test_timestamps_strictly_after_input_at_cadence(frame):
    f = _forecaster(frame)
    fc = f.forecast(frame.tail(30), horizon=5)
    assert fc.timestamps[0] == frame.timestamps[-1] + np.timedelta64(120, "s")
    assert np.all(np.diff(fc.timestamps) == np.timedelta64(120, "s"))
    assert fc.values.shape == (5, 2)
    assert fc.records()[0]["ts"] == str(np.datetime_as_string(fc.timestamps[0], unit="s"))


def test_values_are_in_original_units(frame):
    f = _forecaster(frame)
    fc = f.forecast(frame.tail(30))
    # an untrained net predicts near the window level: original units are ~1e8, scaled ~1
    assert np.median(np.abs(fc.values[:, 0])) > 1e6


def test_batch_equals_single(frame):
    f = _forecaster(frame, "gru")
    frames = [frame.tail(40), frame.tail(30)]
    batch = f.forecast_batch(frames, 3)
    for fr, fc in zip(frames, batch):
        np.testing.assert_allclose(fc.values, f.forecast(fr, 3).values, rtol=1e-5)


def test_errors(frame):
    f = _forecaster(frame)
    with pytest.raises(HorizonTooLong, match="between 1 and 10"):
        f.forecast(frame.tail(30), 11)
    with pytest.raises(NotEnoughRows, match="at least 30 rows"):
        f.forecast(frame.tail(10))
    coarse = prepare_frame(
        {
            "ts": [f"2024-01-01 {h:02d}:00:00" for h in range(24)] + [f"2024-01-02 {h:02d}:00:00" for h in range(24)],
            **{c: [1.0] * 48 for c in FEATURES},
        },
        required=FEATURES,
    )
    with pytest.raises(InvalidInput, match="cadence"):
        f.forecast(coarse)


def test_seeded_nets_are_identical(frame):
    a, b = _forecaster(frame, seed=3), _forecaster(frame, seed=3)
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("extra", [{}, RICH], ids=["window-only", "history-quantiles-log-ensemble"])
def test_serving_inputs_equal_training_inputs(frame, extra):
    """Per-batch scaling, calendar and history features (serving) match training's tensors for the same origins."""
    from flts_streams.forecasting.training import gather, tensors

    spec = _spec(frame, **extra)
    f = Forecaster(spec, build_net(spec, 0))
    w, h = f.spec.window, f.spec.horizon
    origins = [w, w + 7, 800, len(frame) - h]  # no history, some, a day of it
    past, fut, hist, _ = gather(tensors(frame, f.spec), torch.tensor(origins), w, h)
    with torch.inference_mode():
        out = f.net(past, fut, hist).numpy().astype(np.float64)
    mean, scale = f.spec.scaler.params(f.spec.targets)
    expected = out * scale[:, None] + mean[:, None]
    expected[..., 1:] = np.sort(expected[..., 1:], axis=-1)
    expected = np.exp(expected) if f.spec.log_targets else expected
    rows = f.spec.history_rows
    inputs = [f.make_input(frame.rows(max(0, t - rows), t)) for t in origins]
    np.testing.assert_allclose(f.predict_inputs(inputs), expected, rtol=1e-5)
    for t, item in zip(origins, inputs):
        assert (f.future_timestamps(item) == frame.timestamps[t : t + h]).all()


@pytest.mark.parametrize("targets", [("down",), ("down", "up")])
def test_records_name_each_target(frame, targets):
    f = _forecaster(frame)
    fc = Forecast(
        f.future_timestamps(f.make_input(frame.tail(30)))[:3], targets, np.arange(3.0 * len(targets)).reshape(3, -1)
    )
    recs = fc.records("ts")
    assert [list(r) for r in recs] == [["ts", *targets]] * 3
    assert recs[1] == {
        "ts": str(np.datetime_as_string(fc.timestamps[1], unit="s")),
        **{t: float(fc.values[1, j]) for j, t in enumerate(targets)},
    }


@pytest.mark.parametrize("targets", [("down",), ("down", "up"), ('q"uote', "é,],[x", "ü\\n")])
@pytest.mark.parametrize("n", [1, 2, 30])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_records_json_is_the_dump_of_records_byte_for_byte(frame, targets, n, dtype):
    import orjson

    f = _forecaster(frame)
    stamps = f.future_timestamps(f.make_input(frame.tail(30)))
    stamps = np.concatenate([stamps] * 3)[:n]
    awkward = [np.nan, np.inf, -np.inf, -0.0, 1e300, 1e-300, 123456789.123, -7.0, 0.1]
    with np.errstate(over="ignore"):  # 1e300 as float32 is inf: wanted
        values = (np.resize(awkward, n * len(targets)).reshape(n, -1) * (1 + np.arange(n))[:, None]).astype(dtype)
    levels = (0.1, 0.5, 0.9)
    quantiles = np.stack([values * (1 + q) for q in levels], axis=-1)  # (n, targets, levels), float64
    fc = Forecast(stamps, targets, values, f.iso, levels, quantiles)
    for key in ("ts", "timestamp"):
        assert fc.records_json(key) == orjson.dumps(fc.records(key))
        together = fc.records_json_with(key, (2, 0))  # the point forecast, then each quantile asked for
        assert together == [
            orjson.dumps(x.records(key)) for x in (fc, fc.quantile_forecast(2), fc.quantile_forecast(0))
        ]


@pytest.mark.parametrize("targets,n", [((), 3), (("down",), 0)])
def test_records_json_of_an_empty_forecast(targets, n):
    import orjson

    values = np.zeros((n, len(targets)))
    fc = Forecast(
        np.zeros(n, dtype="datetime64[ns]"), targets, values, quantile_levels=(0.5,), quantiles=values[..., None]
    )
    assert fc.records_json() == orjson.dumps(fc.records())
    assert fc.records_json_with("ts", (0,)) == [orjson.dumps(fc.records())] * 2


@pytest.mark.parametrize(
    "start,step_s,n",
    [
        ("2024-02-28T22:00:00", 120, 30),  # across midnight and a leap day
        ("2024-02-28T23:58:00", 120, 2000),  # several days: tables are chained
        ("1969-12-31T23:30:00", 120, 40),  # before the epoch (floor division)
        ("2024-01-01T00:00:00", 1800, 5),
        ("2024-01-01T00:01:00", 120, 10),  # off the 2-minute grid: numpy
        ("2024-01-01T00:00:00", 1, 10),  # too fine for day tables: numpy
        ("2024-01-01T00:00:00", 7, 10),  # does not divide the day: numpy
        ("2024-01-01T00:00:00", 120, 1),
    ],
)
def test_grid_iso_strings_equal_numpys(start, step_s, n):
    from flts_streams.forecasting.forecast import GridIso, iso_seconds

    ts = (np.datetime64(start) + np.arange(1, n + 1) * np.timedelta64(step_s, "s")).astype("datetime64[ns]")
    iso = GridIso(np.timedelta64(step_s, "s"))
    assert iso(ts) == iso_seconds(ts)
    assert iso(ts) == iso_seconds(ts)  # second call: from the day tables
    assert len(iso._days) <= iso.MAX_DAYS


def test_grid_iso_falls_back_for_irregular_and_foreign_timestamps():
    from flts_streams.forecasting.forecast import GridIso, iso_seconds

    iso = GridIso(np.timedelta64(120, "s"))
    ts = (np.datetime64("2024-01-01T00:00:00") + np.array([0, 120, 360, 480]) * np.timedelta64(1, "s")).astype(
        "datetime64[ns]"
    )
    assert iso(ts) == iso_seconds(ts)
    coarse = np.array(["2024-01-01T00:00", "2024-01-01T00:02"], dtype="datetime64[m]")  # not ns
    assert iso(coarse) == iso_seconds(coarse)
    assert iso(ts[:0]) == []
    assert not iso._days


def test_forecasts_render_records_with_the_forecasters_formatter(frame):
    f = _forecaster(frame)
    fc = f.forecast(frame.tail(30), horizon=3)
    assert fc.format_ts is f.iso
    assert [r["ts"] for r in fc.records()] == np.datetime_as_string(fc.timestamps, unit="s").tolist()


@pytest.mark.parametrize(
    "kind,time_feats,extra",
    [
        ("lstm", ("minute_of_day",), {}),
        ("gru", ("minute_of_day", "day_of_week"), {}),
        ("lstm", ("minute_of_day", "day_of_year"), {}),
        ("lstm", ("minute_of_day",), RICH),
        ("gru", ("minute_of_day", "day_of_year"), RICH),
        ("mlp", ("minute_of_day",), {**RICH, "members": 1}),  # what training distils into by default
        ("mlp", ("minute_of_day", "day_of_year"), {}),
    ],
)
def test_the_serving_graph_equals_the_numpy_path_and_the_eager_network(frame, kind, time_feats, extra):
    spec = _spec(frame, kind, time_feats, **extra)
    f = Forecaster(spec, build_net(spec, 0))
    assert (f._graph is None) == ("day_of_year" in time_feats)  # numpy-only feature: the numpy path serves
    rows = spec.history_rows
    inputs = [f.make_input(frame.rows(max(0, t - rows), t)) for t in range(30, len(frame), 7)]  # across days
    for size in (1, 3, len(inputs)):  # traced with a batch of 2: the batch dimension must stay free
        batch = inputs[:size]
        served = f.predict_inputs(batch)
        raw, last = np.stack([i.window for i in batch]), np.array([i.last_ns for i in batch])
        history = f.history_batch(batch) if spec.history_days else np.zeros((size, 0), np.float32)
        numpy_path = f._predict_numpy(raw, last, history)
        run, f._run = f._run, f.net
        try:
            eager = f._predict_numpy(raw, last, history)
        finally:
            f._run = run
        np.testing.assert_array_equal(numpy_path, eager)  # tracing the network changes nothing
        # Bitwise equal here; torch's and numpy's float64 sin/cos may differ by an ulp on other CPUs.
        np.testing.assert_allclose(served, numpy_path, rtol=1e-6, atol=0)


@pytest.mark.parametrize("time_feats", [("minute_of_day",), ("minute_of_day", "day_of_year")])
def test_tracing_at_load_warns_nothing(frame, time_feats):
    spec = _spec(frame, time_features=time_feats)
    with warnings.catch_warnings():
        # TracerWarnings would otherwise reach every worker log per load. (torch 2.13 also deprecates
        # torch.jit.trace; DeprecationWarnings stay hidden in the worker, see forecasting/graph.py.)
        warnings.simplefilter("error", torch.jit.TracerWarning)
        _shared_graph.cache_clear()  # a model of a known architecture traces nothing
        Forecaster(spec, build_net(spec, 0))


def test_tracing_waits_for_the_process_wide_trace_lock(frame):
    # Models load on executor threads (a promotion and the champion-follow timer at once, in CI);
    # two torch.jit.trace calls at a time can fail with "IndexError: unordered_map::at".
    spec = _spec(frame)
    net = build_net(spec, 0)
    _shared_graph.cache_clear()  # a model of a known architecture traces nothing
    with ThreadPoolExecutor(1) as pool:
        with TRACE_LOCK:
            pending = pool.submit(Forecaster, spec, net)
            time.sleep(2.0)  # a load takes ~0.1-0.3 s here
            assert not pending.done()
        assert isinstance(pending.result(timeout=60), Forecaster)


def test_models_of_one_architecture_share_one_graph_and_forecast_with_their_own_weights(frame):
    """One trace per architecture: a graph per model cost ~1.3 MB with 1,000 champions in a worker (issue 27)."""
    spec = _spec(frame, quantiles=(0.1, 0.9), history_days=1)
    a, b = Forecaster(spec, build_net(spec, 1)), Forecaster(spec, build_net(spec, 2))
    assert a._graph._graph is b._graph._graph
    window = frame.tail(800)
    for f in (a, b):
        item = f.make_input(window)
        eager = ServingGraph(f.net, spec, f._offsets_ns).eval()
        with torch.inference_mode():
            want = eager(
                torch.from_numpy(item.window[None]), torch.tensor([item.last_ns]), torch.from_numpy(item.history[None])
            )
        np.testing.assert_allclose(f.predict_inputs([item])[0], want[0].numpy(), rtol=1e-6)
    assert not np.allclose(a.forecast(window).values, b.forecast(window).values)
    other = _spec(frame, quantiles=(0.1, 0.9), history_days=1, log_targets=True)  # baked into the trace
    assert Forecaster(other, build_net(other, 1))._graph._graph is not a._graph._graph
    shared = a.predict_inputs([a.make_input(window)])
    a.use_private_graph()  # the default and global models' faster graph: the same forecasts
    assert a._graph is not b._graph._graph
    np.testing.assert_allclose(a.predict_inputs([a.make_input(window)]), shared, rtol=1e-6)


def test_models_built_on_parallel_threads_all_work_and_agree(frame):
    spec = _spec(frame)
    nets = [build_net(spec, seed) for seed in range(4)]
    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(lambda i: Forecaster(spec, nets[i % 4]), range(32)))
    window = frame.tail(30)
    for i, f in enumerate(built):
        np.testing.assert_array_equal(
            f.forecast(window, horizon=5).values, built[i % 4].forecast(window, horizon=5).values
        )


def test_quantiles_come_in_order_beside_an_unchanged_point_forecast(frame):
    spec = _spec(frame, quantiles=(0.1, 0.5, 0.9))
    f = Forecaster(spec, build_net(spec, 0))
    fc = f.forecast(frame.tail(30), horizon=5)
    assert fc.values.shape == (5, 2) and fc.quantiles is not None and fc.quantiles.shape == (5, 2, 3)
    assert (np.diff(fc.quantiles, axis=-1) >= 0).all()  # never crossing
    assert fc.quantile_levels == (0.1, 0.5, 0.9)
    assert fc.quantile_forecast(2).records()[0]["down"] == fc.quantiles[0, 0, 2]


def test_asking_for_untrained_quantiles_names_the_trained_ones(frame):
    f = Forecaster(_spec(frame, quantiles=(0.1, 0.9)), build_net(_spec(frame, quantiles=(0.1, 0.9)), 0))
    assert f.check_quantiles([0.9, 0.1, 0.9]) == (1, 0)
    assert f.check_quantiles(None) == ()
    with pytest.raises(InvalidInput, match=r"quantiles \[0.5\] were not trained; this model forecasts \[0.1, 0.9\]"):
        f.check_quantiles([0.1, 0.5])
    plain = _forecaster(frame)
    with pytest.raises(InvalidInput, match="this model forecasts no quantiles"):
        plain.check_quantiles([0.5])


def test_a_spec_written_before_quantiles_and_history_loads_as_the_window_only_point_model(frame):
    import json

    old = json.loads(_spec(frame).to_json())
    for key in ("quantiles", "history_days", "profile_halfwidth", "log_targets", "members"):
        del old[key]
    spec = ModelSpec.from_json(json.dumps(old))
    assert spec.quantiles == () and spec.history_days == 0 and not spec.log_targets and spec.members == 1
    assert spec.outputs == 1 and spec.history_rows == spec.window


def test_a_30_row_request_to_a_history_model_is_answered_from_the_window(frame):
    spec = _spec(frame, **RICH)
    f = Forecaster(spec, build_net(spec, 0))
    item = f.make_input(frame.tail(30))
    assert item.history is None and item.short is not None  # its features are computed with its batch's
    features = f.history_batch([item])[0]
    assert features[-1] == 0.0  # no day of history found
    np.testing.assert_array_equal(features, f.history_of(frame.tail(30).column(spec.targets[0])))
    assert np.isfinite(f.forecast(frame.tail(30)).values).all()


def test_a_batch_of_short_and_long_series_gets_each_its_own_history_features(frame):
    """Short series are batched per length; long ones keep the features make_input computed."""
    spec = _spec(frame, **RICH)
    f = Forecaster(spec, build_net(spec, 0))
    frames = [frame.tail(30), frame.tail(31), frame.tail(30), frame.tail(200), frame.tail(spec.history_rows)]
    items = [f.make_input(x) for x in frames]
    assert [i.short is not None for i in items] == [True, True, True, True, False]
    alone = np.stack([f.history_of(x.column(spec.targets[0])[-spec.history_rows :]) for x in frames])
    np.testing.assert_array_equal(f.history_batch(items), alone)
    one_by_one = np.concatenate([f.predict_inputs([i]) for i in items])
    np.testing.assert_allclose(f.predict_inputs(items), one_by_one, rtol=1e-6)
