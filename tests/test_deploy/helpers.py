"""Helpers of the offline checks of docker/, k8s/ and the monitoring files (no Docker, no cluster)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\b(flts_[a-z0-9_]+)")
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "flts-streams.json"
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass"}


def render_kustomization(directory: Path) -> list[dict]:
    """What `kubectl kustomize` renders for our plain base: resources + namespace + common labels."""
    kz = yaml.safe_load((directory / "kustomization.yaml").read_text())
    labels = {k: v for group in kz.get("labels", []) for k, v in group["pairs"].items()}
    docs = []
    for name in kz["resources"]:
        for doc in yaml.safe_load_all((directory / name).read_text()):
            if not doc:
                continue
            if doc["kind"] not in CLUSTER_SCOPED and kz.get("namespace"):
                doc["metadata"]["namespace"] = kz["namespace"]
            doc["metadata"].setdefault("labels", {}).update(labels)
            docs.append(doc)
    return docs


def exported_samples() -> set[str]:
    """Sample names our registry exports (counters as _total, histograms as _bucket/_sum/_count)."""
    from flts_streams.core.metrics import Metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in Metrics().registry.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def promql_metrics(expr: str) -> set[str]:
    """flts_* metric names a PromQL expression reads."""
    return set(METRIC.findall(expr))


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def alert_rules() -> list[dict]:
    """Every rule of the alerts file."""
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard."""
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
