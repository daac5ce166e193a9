"""/predict contract against a real worker: success, every error status, admin, hot swap."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from flts_bench.worker import rss_mb
from flts_streams.forecasting.demo import demo_frame
from tests.integration.harness import ADMIN_TOKEN, Worker, metric, post_predict, predict_payload, start_broker

pytestmark = pytest.mark.integration


def test_predict_with_data_returns_original_units_after_the_input(worker):
    body = predict_payload(inference_length=5)
    r = post_predict(worker, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "SUCCESS" and out["cached"] is False and out["freq"] == "120s"
    assert out["model_uri"] == "models:/flts-demo@champion" and out["run_id"]
    assert out["fallback_model"] is True and out["model_identifier"] == "*"  # PobleSec has no model of its own
    # The session's default is the demo model (synthetic data): the answer says so in words.
    assert out["synthetic_model"] is True and "trained on synthetic data" in out["model_reason"]
    assert metric(worker, 'flts_fallback_predictions_total{model="synthetic_demo"}') >= 1
    assert "fallback model answers identifier=PobleSec" in worker.log_tail(5000)
    ts = [p["ts"] for p in out["predictions"]]
    last = np.datetime64(body["data"]["ts"][-1])
    assert [np.datetime64(t) for t in ts] == [last + np.timedelta64(120 * (i + 1), "s") for i in range(5)]
    down = np.array([p["down"] for p in out["predictions"]])
    assert np.all(down > 1e6), "values must be in original units, not scaled"


def test_quantiles_when_asked_and_the_trained_levels_named_otherwise(worker):
    body = predict_payload(inference_length=5, quantiles=[0.1, 0.9])
    r = post_predict(worker, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert list(out["quantiles"]) == ["0.1", "0.9"] and len(out["predictions"]) == 5
    for low, point, high in zip(out["quantiles"]["0.1"], out["predictions"], out["quantiles"]["0.9"]):
        assert low["ts"] == point["ts"] == high["ts"] and low["down"] <= high["down"]
    by_query = requests.post(worker.url + "/predict", params={"quantiles": "0.5"}, json=predict_payload(), timeout=30)
    assert list(by_query.json()["quantiles"]) == ["0.5"]
    assert "quantiles" not in post_predict(worker, predict_payload()).json()  # old clients: nothing new
    bad = post_predict(worker, predict_payload(quantiles=[0.3]))
    assert bad.status_code == 400 and "[0.1, 0.5, 0.9]" in bad.json()["detail"]


def test_a_week_of_history_in_the_body_is_read(worker):
    week = post_predict(worker, predict_payload(rows=5_040, days=8))
    window = post_predict(worker, predict_payload(rows=30, days=8))
    assert week.status_code == 200 and window.status_code == 200, week.text
    assert week.json()["predictions"][0]["ts"] == window.json()["predictions"][0]["ts"]
    assert week.json()["predictions"] != window.json()["predictions"]  # the history changed the forecast


def test_query_inference_length_and_longer_payloads(worker):
    r = requests.post(
        worker.url + "/predict", params={"inference_length": 3}, json=predict_payload(rows=200), timeout=30
    )
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3


def _detail(r: requests.Response) -> str:
    assert r.headers["Content-Type"].startswith("application/json"), r.text
    return r.json()["detail"]


def test_400_errors_name_the_problem(worker):
    body = predict_payload()
    del body["data"]["rnti_count"]
    assert "rnti_count" in _detail(r := post_predict(worker, body)) and r.status_code == 400
    body = predict_payload()
    body["data"]["ts"][10] = body["data"]["ts"][9]
    assert "duplicate" in _detail(r := post_predict(worker, body)) and r.status_code == 400
    body = predict_payload()
    body["data"]["ts"][10] = "2031-01-01 00:00:00"
    assert "irregular" in _detail(r := post_predict(worker, body)) and r.status_code == 400
    assert "at least 30 rows" in _detail(r := post_predict(worker, predict_payload(rows=10))) and r.status_code == 400
    assert (
        "between 1 and" in _detail(r := post_predict(worker, predict_payload(inference_length=500)))
        and r.status_code == 400
    )
    body = predict_payload()
    body["data"]["up"][3] = None
    assert "'up'" in _detail(r := post_predict(worker, body)) and r.status_code == 400
    body = predict_payload()
    body["data"]["up"][0] = "__NAN__"
    r = post_predict(worker, json.dumps(body).replace('"__NAN__"', "NaN"))
    assert r.status_code == 400 and "NaN" in _detail(r)
    assert post_predict(worker, b'{"data": {"ts": [Infinity]}}').status_code == 400
    body = predict_payload()
    body["data"]["up"][2] = 10**400  # valid JSON, beyond float range: was an OverflowError and a 500
    assert "'up'" in _detail(r := post_predict(worker, body)) and r.status_code == 400


def test_other_error_statuses(worker):
    assert post_predict(worker, b"<xml/>", headers={"Content-Type": "application/xml"}).status_code == 415
    malformed = post_predict(worker, b"{not json")  # JSON it says, JSON it is not: a bad request, not a bad media type
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["detail"]
    assert post_predict(worker, {"inference_length": "five"}).status_code == 422
    assert post_predict(worker, {"data": "nope"}).status_code == 422
    r = post_predict(worker, b" " * (5 * 1024 * 1024))
    assert r.status_code == 413 and "limit" in _detail(r)
    r = requests.get(worker.url + "/predict/never-seen", timeout=10)
    assert r.status_code == 404 and "never-seen" in _detail(r)
    r = post_predict(worker, {"identifier": "never-seen"})
    assert r.status_code == 404
    r = post_predict(worker, predict_payload(), headers={"X-Deadline-Ms": "0"})
    assert r.status_code == 504 and "deadline" in _detail(r)
    assert requests.get(worker.url + "/nope", timeout=5).status_code == 404
    assert requests.delete(worker.url + "/predict", timeout=5).status_code == 405


def test_compat_ping_and_docs(worker):
    ping = requests.get(worker.url + "/predict_ping", timeout=5).json()
    assert ping["model_loaded"] is True and ping["input_seq_len"] == 30 and ping["output_seq_len"] == 30
    assert 'url: "/openapi.json"' in requests.get(worker.url + "/docs", timeout=5).text  # Swagger UI renders it


def test_a_model_load_logs_no_progress_bar_as_a_warning(worker):
    """mode logs the worker's stderr at WARNING; MLflow drew a bar there for each runs:/ download (11 lines)."""
    run_id = post_predict(worker, json.dumps(predict_payload())).json()["run_id"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for uri in (f"runs:/{run_id}/model", "models:/flts-demo@champion"):  # then the default back for other tests
        reload = requests.post(
            worker.url + "/admin/reload", headers=admin, json={"identifier": "*", "model_uri": uri}, timeout=60
        )
        assert reload.status_code == 200, reload.text
    log = worker.log_path.read_text(errors="replace")
    assert f"model installed identifier=* uri=runs:/{run_id}/model" in log
    assert "Downloading artifacts" not in log, [line for line in log.splitlines() if "Downloading" in line][:3]


def test_admin_reload_requires_token(worker):
    assert requests.post(worker.url + "/admin/reload", timeout=10).status_code == 401
    bad = requests.post(worker.url + "/admin/reload", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401
    ok = requests.post(worker.url + "/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
    assert ok.status_code == 200 and ok.json()["models"]["*"] == "models:/flts-demo@champion"
    probe = requests.post(
        worker.url + "/admin/reload",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"model_uri": "/etc/passwd"},
        timeout=10,
    )
    assert probe.status_code == 400 and "models:/ or runs:/" in probe.json()["detail"]
    anonymous = requests.post(worker.url + "/admin/reload", timeout=10)
    assert anonymous.status_code == 401


def test_hot_swap_under_concurrent_load_fails_no_request(worker, trained):
    from flts_streams.core.settings import Settings
    from flts_streams.forecasting import packaging
    from flts_streams.forecasting.pipeline import train_and_register
    from flts_streams.forecasting.training import TrainConfig

    var, _ = trained
    packaging.configure(Settings(paths={"var_dir": var}).mlflow_tracking_uri)
    data = var / "swap.csv"
    demo_frame(days=3, seed=77).to_csv(data, index=False)
    new = train_and_register(
        data,
        "swap",
        TrainConfig(epochs=1, hidden_size=16, members=1),
        registry_prefix="flts-",
        alias="champion",
        progress=False,
    )
    body = json.dumps(predict_payload(inference_length=2))
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post_predict, worker, body) for _ in range(300)]
        swap = requests.post(
            worker.url + "/admin/reload",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            json={"identifier": "*", "model_uri": new.model_uri},
            timeout=60,
        )
        results = [f.result() for f in futures]
    assert swap.status_code == 200
    assert [r.status_code for r in results if r.status_code != 200] == []
    after = post_predict(worker, body).json()
    assert after["run_id"] == new.run_id
    # restore the default for other tests
    requests.post(
        worker.url + "/admin/reload",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={"identifier": "*", "model_uri": "models:/flts-demo@champion"},
        timeout=60,
    )


def test_overload_sheds_with_429_and_health_stays_up(trained, tmp_path):
    var, uri = trained
    broker = start_broker(
        tmp_path / "broker"
    )  # its own broker: joining the shared group would rebalance the session worker
    w = Worker(
        tmp_path / "var",
        broker.url,
        {
            "FLTS_MODEL__DEFAULT_URI": uri,
            "FLTS_MODEL__TRACKING_URI": f"sqlite:///{var / 'mlflow.db'}",
            "FLTS_SERVING__MAX_IN_FLIGHT": "2",
            "FLTS_SERVING__MAX_BATCH_WAIT_MS": "50",
            "FLTS_APP_DATADIR": str(tmp_path / "faust"),
        },
    ).start()
    try:
        w.wait_ready(path="/healthz")
        while post_predict(w, predict_payload()).status_code == 503:  # model still loading
            pass
        body = json.dumps(predict_payload(rows=2000))

        def burst() -> list[requests.Response]:
            with ThreadPoolExecutor(16) as pool:
                return list(pool.map(lambda _: post_predict(w, body), range(64)))

        results = burst()
        codes = {r.status_code for r in results}
        assert codes <= {200, 429} and 429 in codes and 200 in codes
        shed = next(r for r in results if r.status_code == 429)
        assert int(shed.headers["Retry-After"]) >= 1 and "in flight" in shed.json()["detail"]
        assert requests.get(w.url + "/healthz", timeout=5).status_code == 200
        assert 'flts_rejected_requests_total{reason="overloaded"}' in requests.get(w.url + "/metrics", timeout=5).text
        # Memory: shed and finished requests leave nothing behind. 8 more rounds send 512 bodies of 170 KB
        # (87 MB); keeping even half of them would break the bound (measured growth: ~12 MB).
        warm = rss_mb(w.process.pid)
        for _ in range(8):
            assert {r.status_code for r in burst()} <= {200, 429}
        grown = rss_mb(w.process.pid) - warm
        assert grown < 40, f"RSS grew {grown:.0f} MB over 8 more overload rounds (warm {warm:.0f} MB)"
    finally:
        w.stop()
        broker.stop()


def test_hostile_bodies_get_a_4xx_and_no_traceback(worker):
    """Each of these was a 500 with a logged traceback, or inflated on the event loop before any size check."""
    import zlib

    def tracebacks() -> int:
        return worker.log_tail(100_000).count("Traceback")

    before = tracebacks()
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip: 64 MiB of zeros in ~64 KB
    gz = b"".join(bomb.compress(bytes(1 << 20)) for _ in range(64)) + bomb.flush()
    r = post_predict(worker, gz, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 415 and "Content-Encoding" in r.json()["detail"], r.text  # refused, never inflated
    r = post_predict(worker, b'{"data": 1}', headers={"Content-Encoding": "gzip"})  # not gzip at all
    assert r.status_code == 415, r.text
    r = post_predict(worker, b'{"inference_length": ' + b"9" * 5000 + b"}")  # beyond CPython's 4,300-digit int limit
    assert r.status_code == 400 and "not usable JSON" in r.json()["detail"], r.text
    _disconnect_mid_body(worker)
    time.sleep(0.5)
    assert tracebacks() == before, worker.log_tail(40)


def _disconnect_mid_body(worker: Worker) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as s:
        s.sendall(
            b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"da'
        )
        time.sleep(0.3)
