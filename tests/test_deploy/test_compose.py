"""docker/compose.yaml: services, env, ports and healthchecks agree with the code."""

from __future__ import annotations

import yaml

from flts_streams.core.settings import Settings
from flts_streams.core.settings_doc import known_env_names
from tests.test_deploy.helpers import ROOT

WORKERS = ("worker-1", "worker-2")
ONE_SHOT = ("kafka-init", "minio-init")


def test_stack_has_every_component(compose):
    assert set(compose["services"]) == {
        "kafka",
        "kafka-init",
        "minio",
        "minio-init",
        "mlflow",
        *WORKERS,
        "prometheus",
        "grafana",
        "locust",
    }
    assert "KAFKA_PROCESS_ROLES" in compose["services"]["kafka"]["environment"]  # KRaft, no ZooKeeper


def test_long_running_services_have_healthchecks_and_dependencies_exist(compose):
    services = compose["services"]
    for name, svc in services.items():
        if name not in ONE_SHOT and name != "locust":
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == want, f"{name} -> {dep}"


def test_worker_env_names_exist_in_the_code_and_ports_match(compose):
    known = known_env_names()
    defaults = Settings().faust_defaults()
    for name in WORKERS:
        svc = compose["services"][name]
        env = svc["environment"]
        assert not set(env) - known, f"{name} sets env vars the code never reads: {set(env) - known}"
        port = int(env["FLTS_WEB_PORT"])
        assert port == defaults["web_port"] and svc["ports"][0].endswith(f":{port}")
        assert env["FLTS_NODE_CANONICAL_URL"] == f"http://{name}:{port}" and env["FLTS_WEB_BIND"] == "0.0.0.0"
        assert "/healthz" in " ".join(svc["healthcheck"]["test"])
        assert env["FLTS_MODEL__TRACKING_URI"] == "http://mlflow:5000"
        assert svc["build"]["target"] == "runtime"


def test_topics_created_are_the_topics_the_code_uses(compose):
    topics = Settings().topics
    script = compose["services"]["kafka-init"]["command"][0]
    for name in (topics.inference, topics.training, topics.results, topics.selected, topics.dead_letter):
        assert name in script
    assert f"--partitions {compose['services']['worker-1']['environment']['FLTS_TOPICS__PARTITIONS']}" in script


def test_buckets_and_prometheus_targets(compose):
    assert "local/flts" in compose["services"]["minio-init"]["command"][0]
    assert compose["services"]["worker-1"]["environment"]["FLTS_STORAGE__BUCKET"] == "flts"
    prom = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert sorted(job["static_configs"][0]["targets"]) == [f"{w}:6066" for w in WORKERS]


def test_mounted_files_exist(compose):
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / "docker" / source).exists(), f"{name} mounts missing {source}"
