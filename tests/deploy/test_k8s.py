"""The Kubernetes manifests, checked offline with real tools: ``kustomize build`` of each overlay, every object
validated against the Kubernetes API schemas (kubernetes-validate), the KEDA objects against KEDA's own CRD
schemas, a checkov scan with no failed check (skips only with a reason written in the manifest), and the
contract the service needs: probes on the metrics endpoint, graceful stop, requests from the measured RSS,
scaling bounds = partitions, secrets only as mounted files or references."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from extractor.config import REPO_ROOT, Settings
from tests.deploy.conftest import OVERLAYS

K8S_VERSION = "1.33.0"  # GKE's regular channel at the time of writing
MEASURED_PEAK_RSS_MIB = 423  # python -m extractor bench chain (README, Figures)
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "PodMonitoring", "Rules"}
GMP_VERSION = "v0.13.0"  # github.com/GoogleCloudPlatform/prometheus-engine: the CRDs of GKE's managed Prometheus


def _objs(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _config(docs: list[dict]) -> dict[str, str]:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("extractor-config"))[
        "data"]


@pytest.mark.parametrize("overlay", ["local", "gke"])
def test_overlay_builds_with_the_expected_objects(rendered: dict[str, list[dict]], overlay: str) -> None:
    kinds = sorted(d["kind"] for d in rendered[overlay])
    assert {"Deployment", "ConfigMap", "Service", "ServiceAccount", "NetworkPolicy", "PodDisruptionBudget",
            "Namespace"} <= set(kinds)
    archiver = {"extractor-archiver"} if overlay == "gke" else set()  # components/archive, in the GKE overlay
    assert set(_objs(rendered[overlay], "Deployment")) == {"extractor-worker", "kafka-connect"} | archiver
    assert all(d["metadata"].get("namespace", "clinical-extractor") == "clinical-extractor" for d in rendered[overlay])


@pytest.mark.parametrize("overlay", ["local", "gke"])
def test_every_object_matches_the_kubernetes_schemas(rendered: dict[str, list[dict]], overlay: str) -> None:
    checked = 0
    for doc in rendered[overlay]:
        if doc["kind"] in CRD_KINDS:
            continue  # KEDA's kinds: test_keda_objects_match_the_keda_crds
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any error or unknown field
        checked += 1
    assert checked >= 9


def test_autoscaling_keda_on_lag_with_hpa_fallback(rendered: dict[str, list[dict]]) -> None:
    partitions = Settings.model_construct().input_partitions
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert f"medical-entries:{partitions}" in "\n".join(compose["services"]["topics"]["command"])
    # local: no KEDA, the CPU HPA
    hpa = _objs(rendered["local"], "HorizontalPodAutoscaler")["extractor-worker"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, partitions)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert not _objs(rendered["local"], "ScaledObject")
    # GKE: KEDA on the consumer group's lag, and no HPA of ours competing with KEDA's
    assert not _objs(rendered["gke"], "HorizontalPodAutoscaler")
    so = _objs(rendered["gke"], "ScaledObject")["extractor-worker"]["spec"]
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (1, partitions)
    assert so["scaleTargetRef"]["name"] == "extractor-worker"
    trigger = so["triggers"][0]
    assert trigger["type"] == "kafka"
    config = _config(rendered["gke"])
    for key in ("bootstrapServersFromEnv", "consumerGroupFromEnv", "topicFromEnv"):
        assert trigger["metadata"][key] in config
    assert config["EXTRACTOR_GROUP_ID"] == Settings.model_construct().group_id
    auth = _objs(rendered["gke"], "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {"extractor-kafka-sasl"}


@pytest.mark.parametrize("overlay", ["local", "gke"])
def test_worker_contract(rendered: dict[str, list[dict]], overlay: str) -> None:
    docs = rendered[overlay]
    port = int(_config(docs)["EXTRACTOR_METRICS_PORT"])
    pod = _objs(docs, "Deployment")["extractor-worker"]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                              "prometheus.io/path": "/metrics"}
    spec = pod["spec"]
    # longer than a batch: 500 entries take < 5 s even when all need NER (bench chain: >= 970 entries/s mixed)
    assert spec["terminationGracePeriodSeconds"] >= 30
    (c,) = spec["containers"]
    assert c["args"] == ["work"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": port}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    mem = c["resources"]["requests"]["memory"]
    assert mem.endswith("Mi") and int(mem[:-2]) >= MEASURED_PEAK_RSS_MIB
    assert int(c["resources"]["limits"]["memory"][:-2]) > int(mem[:-2])
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] >= 10000
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_secrets_are_never_in_the_gke_manifests_and_only_mounted(rendered: dict[str, list[dict]]) -> None:
    gke = rendered["gke"]
    assert not _objs(gke, "Secret")  # created beforehand with kubectl (README)
    text = yaml.safe_dump_all(gke)
    # every password is a reference to a mounted file, never a value
    assert not re.search(r'password[=:]\s*"?(?!\$\{file:)[^\s"]', text) and not re.search(r"mongodb(\+srv)?://\w", text)
    worker = _objs(gke, "Deployment")["extractor-worker"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in worker["containers"][0]["env"]}
    assert "EXTRACTOR_SASL_PASSWORD" not in env  # a file, not an environment variable
    assert env["EXTRACTOR_SASL_PASSWORD_FILE"]["value"].startswith("/var/run/secrets/extractor/kafka/")
    connect = _objs(gke, "ConfigMap")
    props = next(v for k, v in connect.items() if k.startswith("connect-config"))["data"]
    assert "${file:/var/run/secrets/extractor/mongo/connect.properties:connection.uri}" in props[
        "mongo-sink.properties"]
    assert "security.protocol=SASL_SSL" in props["worker.properties"]
    assert "consumer.sasl.jaas.config" in props["worker.properties"]
    # the local overlay's placeholders are the only Secret objects anywhere, and hold no real credential
    local = _objs(rendered["local"], "Secret")
    assert {k.rsplit("-", 1)[0] for k in local} == {"extractor-kafka-sasl", "extractor-mongo"}


def test_connector_properties_match_the_shared_connector_file() -> None:
    shared = json.loads((REPO_ROOT / "connectors" / "mongo-sink.json").read_text())
    props = dict(line.split("=", 1) for line in (REPO_ROOT / "deploy/k8s/base/connect/mongo-sink.properties")
                 .read_text().splitlines() if line and not line.startswith("#"))
    assert props.pop("name") == shared["name"]
    assert props.pop("connection.uri").startswith("${file:")
    assert props == {k: v for k, v in shared["config"].items() if k != "connection.uri"}


def _keda_crd(kind: str) -> dict[str, Any]:
    """KEDA's CRD schema for ``kind``, from KEDA's Go module fetched through the Go module proxy."""
    from tests.deploy.conftest import TOOLS

    version = "v2.17.2"
    cache = TOOLS / "keda" / version
    name = {"ScaledObject": "keda.sh_scaledobjects.yaml",
            "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}
    path = cache / name[kind]
    if not path.is_file():
        out = subprocess.run(["go", "mod", "download", "-json", f"github.com/kedacore/keda/v2@{version}"],
                             capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
        if out.returncode != 0:
            pytest.fail(f"go mod download of KEDA failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}", pytrace=False)
        src = Path(json.loads(out.stdout)["Dir"]) / "config" / "crd" / "bases"
        cache.mkdir(parents=True, exist_ok=True)
        for f in name.values():
            (cache / f).write_bytes((src / f).read_bytes())
    crd = yaml.safe_load(path.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return v1["schema"]["openAPIV3Schema"]


def test_keda_objects_match_the_keda_crds(rendered: dict[str, list[dict]]) -> None:
    import jsonschema

    for doc in rendered["gke"]:
        if doc["kind"] in {"ScaledObject", "TriggerAuthentication"}:
            schema = _keda_crd(doc["kind"])
            spec_schema = schema["properties"]["spec"]
            _no_extra(spec_schema)
            jsonschema.validate(doc["spec"], spec_schema)


def _no_extra(schema: Any) -> None:
    """Structural CRD schemas prune unknown fields: make the validator refuse them instead (typos fail)."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for v in schema.values():
            _no_extra(v)
    elif isinstance(schema, list):
        for v in schema:
            _no_extra(v)


@pytest.mark.parametrize("target", ["local", "gke", "Dockerfile"])
def test_checkov_finds_nothing_unjustified(checkov: Path, kustomize: Path, rendered: dict[str, list[dict]],
                                           target: str, tmp_path: Path) -> None:
    if target == "Dockerfile":
        args = ["-f", str(REPO_ROOT / "deploy" / "Dockerfile"), "--framework", "dockerfile"]
    else:
        path = tmp_path / f"{target}.yaml"
        path.write_text(yaml.safe_dump_all(rendered[target]))
        args = ["-f", str(path), "--framework", "kubernetes"]
    out = subprocess.run([str(checkov), *args, "-o", "json", "--compact", "--skip-download"],
                         capture_output=True, text=True, timeout=900)
    report = json.loads(out.stdout) if out.stdout.strip().startswith(("{", "[")) else None
    assert report is not None, f"checkov gave no report ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    reports = report if isinstance(report, list) else [report]
    failed = [(c["check_id"], c["resource"], c.get("check_name")) for r in reports
              for c in r.get("results", {}).get("failed_checks", [])]
    passed = sum(len(r.get("results", {}).get("passed_checks", [])) for r in reports)
    assert failed == [], "\n".join(map(str, failed))
    assert passed > 10
    for r in reports:  # every skip carries its reason
        for c in r.get("results", {}).get("skipped_checks", []):
            reason = c.get("check_result", {}).get("suppress_comment") or c.get("suppress_comment") or ""
            assert len(reason) > 20, c


def test_dockerfile_multi_stage_non_root_with_model_and_lexicons() -> None:
    text = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert "COPY lexicons" in text and "COPY models" in text and "Chain.from_settings" in text
    assert "build-essential" not in runtime and "openjdk-17-jre-headless" in runtime
    assert '"python", "-m", "extractor"' in runtime and "HEALTHCHECK" in runtime
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".services", "out", "lexicons/.cache"} <= set(ignored)
    assert (OVERLAYS / "gke" / "kustomization.yaml").is_file()


def _gmp_crd(kind: str) -> dict[str, Any]:
    """The CRD schema of a Google Cloud Managed Service for Prometheus kind, from its Go module (module proxy)."""
    from tests.deploy.conftest import TOOLS

    cache = TOOLS / "gmp" / GMP_VERSION
    name = {"PodMonitoring": "monitoring.googleapis.com_podmonitorings.yaml",
            "Rules": "monitoring.googleapis.com_rules.yaml"}
    path = cache / name[kind]
    if not path.is_file():
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"github.com/GoogleCloudPlatform/prometheus-engine@{GMP_VERSION}"],
            capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
        if out.returncode != 0:
            pytest.fail(f"go mod download of prometheus-engine failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}",
                        pytrace=False)
        src = Path(json.loads(out.stdout)["Dir"]) / "charts" / "operator" / "crds"
        cache.mkdir(parents=True, exist_ok=True)
        for f in name.values():
            (cache / f).write_bytes((src / f).read_bytes())
    crd = yaml.safe_load(path.read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return v1["schema"]["openAPIV3Schema"]


def test_managed_prometheus_objects_match_their_crds(rendered: dict[str, list[dict]]) -> None:
    import jsonschema

    kinds = {d["kind"]: d for d in rendered["gke"] if d["kind"] in {"PodMonitoring", "Rules"}}
    assert set(kinds) == {"PodMonitoring", "Rules"}
    for doc in rendered["gke"]:
        if doc["kind"] in {"PodMonitoring", "Rules"}:
            spec_schema = _gmp_crd(doc["kind"])["properties"]["spec"]
            _no_extra(spec_schema)
            jsonschema.validate(doc["spec"], spec_schema)
    monitored = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]: d["spec"]["endpoints"][0]["port"]
                 for d in rendered["gke"] if d["kind"] == "PodMonitoring"}
    deployments = _objs(rendered["gke"], "Deployment")
    for app, port in monitored.items():  # every scraped port is a named container port of that Deployment
        containers = deployments[app]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"] for c in containers for p in c.get("ports", [])}
        assert port in ports, (app, port)


def test_gke_rules_are_the_tested_rule_file() -> None:
    """components/gmp/rules.yaml is deploy/monitoring/alerts.yml (promtool-tested) as a Rules resource."""
    source = yaml.safe_load((REPO_ROOT / "deploy" / "monitoring" / "alerts.yml").read_text())["groups"]
    built = yaml.safe_load((REPO_ROOT / "deploy" / "k8s" / "components" / "gmp" / "rules.yaml").read_text())
    assert built["kind"] == "Rules" and built["spec"]["groups"] == source, "run python scripts/build_gmp_rules.py"


def test_the_archiver_uses_workload_identity_and_a_bucket(rendered: dict[str, list[dict]]) -> None:
    """GKE: the archiver's own service account is bound to a Google service account (no key file anywhere), and
    the archive URL is a gs:// bucket."""
    docs = rendered["gke"]
    sa = next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "extractor-archiver")
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "extractor-archiver")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "extractor-archiver" and pod["containers"][0]["args"][0] == "archive"
    assert _config(docs)["EXTRACTOR_ARCHIVE_URL"].startswith("gs://")
    assert not any("GOOGLE_APPLICATION_CREDENTIALS" in str(c.get("env")) for c in pod["containers"])
