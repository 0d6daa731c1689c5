"""The deployment files: Kubernetes overlays render, validate and keep their promises.

Docker is not on the build machines, so the image is never built here. What is checked
instead: every kustomize overlay renders offline (``kubectl kustomize``), each object
validates against the Kubernetes API schemas (``kubernetes-validate``, strict), the security
promises hold in the rendered objects (asserted here), and ``checkov`` finds nothing in the
manifests or the Dockerfile; ``hadolint`` lints the Dockerfile; the compose file is read
and its shape checked.

``kubectl`` and ``checkov`` are programs, not Python packages of ours (checkov's own pins
clash with the test tools'), so ``.ci/run`` installs them; where one is missing the test
says so and is skipped, except in CI (``CI`` set), where a missing tool fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "k8s" / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.30.0"
SECRET_VARIABLES = {
    "CAREGW_DATABASE_URL",
    "CAREGW_REDIS_URL",
    "CAREGW_CACHE_KEYS",
    "CAREGW_CACHE_INDEX_KEY",
    "CAREGW_SMART_SIGNING_KEY_FILE",
}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs it")
        pytest.skip(f"{name} is not installed (.ci/run installs it)")
    return found


def _render(overlay: str) -> list[dict[str, Any]]:
    kubectl = _tool("kubectl")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    docs = _render(request.param)
    path = tmp_path_factory.mktemp("k8s") / f"{request.param}.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return request.param, docs, path


def _one(docs: list[dict[str, Any]], kind: str, name: str = "caregateway") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _containers(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job", "CronJob"):
            spec = doc["spec"]
            pod = spec["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else spec
            yield from pod["template"]["spec"]["containers"]


def test_there_are_overlays() -> None:
    assert {"production", "staging"} <= set(OVERLAYS)


def test_every_object_validates_against_the_api_schemas(rendered: Any) -> None:
    import kubernetes_validate

    _, docs, _ = rendered
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {d["kind"] for d in docs} >= {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceAccount",
        "ConfigMap",
        "Job",
    }


def test_an_invalid_object_is_refused_by_the_schema_check() -> None:
    import kubernetes_validate

    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "three", "selector": {}, "template": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_pods_run_as_non_root_on_a_read_only_filesystem(rendered: Any) -> None:
    _, docs, _ = rendered
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    for container in _containers(docs):
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_probes_use_the_health_endpoints(rendered: Any) -> None:
    _, docs, _ = rendered
    (gateway,) = [c for c in _containers(docs) if c["name"] == "gateway"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/health/live"


def test_secrets_are_referenced_never_written(rendered: Any) -> None:
    _, docs, _ = rendered
    assert not [d for d in docs if d["kind"] == "Secret"], "a Secret object in the manifests"
    config = _one(docs, "ConfigMap", "caregateway-config")["data"]
    assert not SECRET_VARIABLES & set(config), "a secret setting in the ConfigMap"
    for container in _containers(docs):
        for var in container.get("env", ()):
            assert var["name"] not in SECRET_VARIABLES, f"{var['name']} as an environment value"
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    secret_volumes = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secret_volumes == {"caregateway-secrets", "caregateway-sources"}


def test_selectors_match_the_pods_and_nothing_else(rendered: Any) -> None:
    _, docs, _ = rendered
    deployment = _one(docs, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert _one(docs, "Service")["spec"]["selector"].items() <= labels.items()
    assert _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    assert _one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == selector
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_network_policy_lets_in_only_the_api_and_out_only_what_is_needed(rendered: Any) -> None:
    _, docs, _ = rendered
    policy = _one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    api, metrics = policy["ingress"]
    assert api["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9090}]
    for ingress in (api, metrics):
        assert all("namespaceSelector" in peer for peer in ingress["from"])
    monitoring = metrics["from"][0]["namespaceSelector"]["matchLabels"]
    assert monitoring == {"kubernetes.io/metadata.name": "monitoring"}
    ports = [{(p["protocol"], p["port"]) for p in rule["ports"]} for rule in policy["egress"]]
    assert set().union(*ports) == {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 6379),
        ("TCP", 5432),
        ("TCP", 443),
    }
    dns = [r for r, open_ in zip(policy["egress"], ports, strict=True) if ("UDP", 53) in open_]
    assert dns[0]["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    for rule in policy["egress"]:
        assert rule.get("to"), "an egress rule open to every address"


def test_shutdown_fits_in_the_grace_period_and_metrics_have_their_port(rendered: Any) -> None:
    _, docs, _ = rendered
    config = _one(docs, "ConfigMap", "caregateway-config")["data"]
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    drain, timeout = (
        float(config["CAREGW_SHUTDOWN_DRAIN_S"]),
        float(config["CAREGW_SHUTDOWN_TIMEOUT_S"]),
    )
    assert 0 < drain and drain + timeout < grace
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert ports == {"http": 8080, "metrics": int(config["CAREGW_METRICS_PORT"])}


def test_migrations_run_as_a_job_that_reaches_only_the_database(rendered: Any) -> None:
    _, docs, _ = rendered
    job = _one(docs, "Job", "caregateway-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade"]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    service = _one(docs, "Service")["spec"]["selector"]
    assert not service.items() <= pod_labels.items(), "the Service would route to the Job"
    policy = _one(docs, "NetworkPolicy", "caregateway-migrate")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["ingress"] == []
    ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 5432)}


def test_checkov_finds_nothing_in_the_manifests(rendered: Any) -> None:
    checkov = _tool("checkov")
    _, _, path = rendered
    result = _checkov(checkov, "-f", str(path), "--framework", "kubernetes")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Failed checks: 0" in result.stdout


def test_checkov_and_hadolint_find_nothing_in_the_dockerfile() -> None:
    dockerfile = DEPLOY / "Dockerfile"
    result = _checkov(_tool("checkov"), "-f", str(dockerfile), "--framework", "dockerfile")
    assert result.returncode == 0, result.stdout[-3000:]
    lint = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_image_is_slim_non_root_and_checks_its_health() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all("slim" in image for image in froms)
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text and "/health/live" in text


def _checkov(checkov: str, *args: str) -> subprocess.CompletedProcess[str]:
    # --skip-download: checkov otherwise asks a vendor's API for its guidelines; the checks
    # themselves ship with the package.
    return subprocess.run(
        [checkov, *args, "--compact", "--quiet", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )


def test_compose_runs_two_replicas_behind_one_port_with_secured_redis() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    gateways = [name for name in services if name.startswith("gateway-")]
    assert len(gateways) == 2
    for name in gateways:
        env = services[name]["environment"]
        assert env["CAREGW_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "${REDIS_PASSWORD" in env["CAREGW_REDIS_URL"]
        assert services[name]["read_only"] is True
        assert "ports" not in services[name], "a replica published on its own"
    assert services["proxy"]["ports"] == ["127.0.0.1:8080:8080"]
    nginx = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert all(f"server {name}:8080" in nginx for name in gateways)
    redis = services["redis"]["command"]
    assert "--requirepass" in redis and redis[redis.index("--appendonly") + 1] == "yes"
    assert "postgres" in services and "sources" in services
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert f"${{{secret}:?" in (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
