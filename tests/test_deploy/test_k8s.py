"""k8s/: rendered manifests validate against Kubernetes and KEDA schemas and agree with the code."""

from __future__ import annotations

import copy
import json

import jsonschema
import kubernetes_validate
import pytest

from flts_streams.core.settings import APP_ID, Settings
from flts_streams.core.settings_doc import known_env_names
from tests.test_deploy.helpers import ROOT, by_kind, exported_samples, promql_metrics

K8S_VERSION = "1.30.0"
KEDA_SCHEMA = json.loads((ROOT / "tests" / "test_deploy" / "keda_scaledobject.schema.json").read_text())
POD_ENV = {"POD_NAME", "POD_NAMESPACE"}  # downward API, used to build the canonical URL


def _validate(doc: dict) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(doc, KEDA_SCHEMA)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _container(manifests: list[dict]) -> dict:
    (sts,) = by_kind(manifests, "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return container


def test_every_rendered_manifest_validates(manifests):
    kinds = sorted(d["kind"] for d in manifests)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "Service",
            "StatefulSet",
            "Deployment",
            "CronJob",
            "PodDisruptionBudget",
            "ScaledObject",
        ]
    )
    for doc in manifests:
        _validate(doc)
    kubernetes_validate.validate(
        __import__("yaml").safe_load((ROOT / "k8s" / "secret.example.yaml").read_text()), K8S_VERSION, strict=True
    )


@pytest.mark.parametrize(
    "kind,path,bad",
    [
        ("StatefulSet", ("spec", "template", "spec", "containers", 0), {"readinesProbe": {}}),
        ("ScaledObject", ("spec",), {"maxReplicas": 4}),
        ("ScaledObject", ("spec", "triggers", 0, "metadata"), {"lagThreshold": 10}),  # metadata values are strings
    ],
)
def test_validation_rejects_typos(manifests, kind, path, bad):
    doc = copy.deepcopy(by_kind(manifests, kind)[0])
    node = doc
    for key in path:
        node = node[key]
    node.update(bad)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        _validate(doc)


def test_statefulset_shape(manifests):
    (sts,) = by_kind(manifests, "StatefulSet")
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    headless = [s for s in by_kind(manifests, "Service") if s["spec"].get("clusterIP") == "None"]
    assert [s["metadata"]["name"] for s in headless] == [spec["serviceName"]]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["terminationGracePeriodSeconds"] >= 30
    c = _container(manifests)
    assert (
        c["securityContext"]["readOnlyRootFilesystem"] is True
        and c["securityContext"]["allowPrivilegeEscalation"] is False
    )
    assert {"requests", "limits"} <= set(c["resources"])
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts and "/data" in mounts  # the only writable places with a read-only root
    assert sts["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_ports_and_probe_paths_exist_in_the_code(manifests):
    from flts_streams.app import app

    app.discover()
    routes = {str(p) for p in app.web.views}
    c = _container(manifests)
    port = c["ports"][0]["containerPort"]
    assert port == Settings().faust_defaults()["web_port"]
    probes = {name: c[name]["httpGet"]["path"] for name in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"] == "/readyz" and probes["livenessProbe"] == "/healthz"
    assert set(probes.values()) <= routes
    (sts,) = by_kind(manifests, "StatefulSet")
    assert sts["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert "EXPOSE 6066" in (ROOT / "docker" / "Dockerfile").read_text() and port == 6066


def test_env_names_exist_in_the_code(manifests):
    known = known_env_names()
    c = _container(manifests)
    names = {e["name"] for e in c["env"]}
    (cm,) = by_kind(manifests, "ConfigMap")
    assert c["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
    unknown = (names | set(cm["data"])) - known - POD_ENV
    assert not unknown, f"manifests set env vars the code never reads: {unknown}"
    secrets = {e["name"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert secrets == {"FLTS_STORAGE__ACCESS_KEY", "FLTS_STORAGE__SECRET_KEY", "FLTS_SERVING__ADMIN_TOKEN"}
    assert not {"FLTS_STORAGE__ACCESS_KEY", "FLTS_STORAGE__SECRET_KEY"} & set(cm["data"]), (
        "credentials belong in the Secret"
    )


def test_keda_targets_the_statefulset_group_and_partitions(manifests):
    (so,) = by_kind(manifests, "ScaledObject")
    (sts,) = by_kind(manifests, "StatefulSet")
    (cm,) = by_kind(manifests, "ConfigMap")
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts["metadata"]["name"]}
    partitions = int(cm["data"]["FLTS_TOPICS__PARTITIONS"])
    assert spec["minReplicaCount"] <= sts["spec"]["replicas"] <= spec["maxReplicaCount"] <= partitions
    assert spec["cooldownPeriod"] >= 300, "each scale step costs a rebalance"
    kafka = next(t for t in spec["triggers"] if t["type"] == "kafka")["metadata"]
    assert kafka["consumerGroup"] == APP_ID and kafka["topic"] == Settings().topics.inference
    assert kafka["bootstrapServers"] in cm["data"]["FLTS_BROKER_URL"]
    for prom in (t["metadata"] for t in spec["triggers"] if t["type"] == "prometheus"):
        assert promql_metrics(prom["query"]) and promql_metrics(prom["query"]) <= exported_samples()


def test_keda_scales_on_admission_not_only_latency(manifests):
    """Shedding keeps accepted latency bounded, so only an in-flight trigger sees overload."""
    (so,) = by_kind(manifests, "ScaledObject")
    (cm,) = by_kind(manifests, "ConfigMap")
    (in_flight,) = [
        t["metadata"]
        for t in so["spec"]["triggers"]
        if t["type"] == "prometheus" and promql_metrics(t["metadata"]["query"]) == {"flts_http_predictions_in_flight"}
    ]
    # Scale out well before a replica sheds: at most half its admission limit on average.
    assert 0 < float(in_flight["threshold"]) <= int(cm["data"]["FLTS_SERVING__MAX_IN_FLIGHT"]) / 2


def test_the_trainer_runs_flts_trainer_apart_from_the_workers(manifests):
    from flts_streams.commands.cli import build_parser

    (deployment,) = by_kind(manifests, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["flts", "trainer"]
    build_parser().parse_args(container["command"][1:])  # the subcommand exists
    assert deployment["spec"]["replicas"] == 1 and container["resources"]["limits"]["cpu"]
    names = {e["name"] for e in container["env"]} | set(by_kind(manifests, "ConfigMap")[0]["data"])
    assert names <= known_env_names(), names - known_env_names()


def test_the_global_model_is_retrained_from_the_claims_on_a_schedule(manifests):
    from flts_streams.commands.cli import _check_train_args, build_parser

    (job,) = by_kind(manifests, "CronJob")
    spec = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = build_parser().parse_args(container["command"][1:])  # the options exist and parse
    _check_train_args(args, Settings())  # and make sense together
    assert args.global_model and args.claims and args.claims_sample and not args.promote
    assert job["spec"]["concurrencyPolicy"] == "Forbid" and spec["restartPolicy"] == "Never"
    (trainer,) = by_kind(manifests, "Deployment")
    assert container["env"] == trainer["spec"]["template"]["spec"]["containers"][0]["env"]  # same credentials
