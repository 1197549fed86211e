"""The Kubernetes manifests and the Dockerfile under deploy/, checked without a cluster or a
docker engine: schemas (kubernetes-validate), the config they ship (check-config), and the
facts that tie them together (ports, probes, drain timing, labels, the non-root image)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from proxy.builder import build_pipeline
from proxy.config import load_toml
from proxy.supervisor import STOP_MARGIN
from tests.tls_support import CertificateAuthority

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
#: The oldest Kubernetes the manifests are written for (the preStop sleep action is
#: on by default from 1.30), and the newest schemas kubernetes-validate ships.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every YAML document under deploy/kubernetes, by file name."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(KUBERNETES.glob("*.yaml"))
    }


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """The Kubernetes resources (kustomization excluded) by (kind, name)."""
    found = {}
    for name, documents in manifests().items():
        if name == "kustomization.yaml":
            continue
        for doc in documents:
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version):
    found = resources()
    problems = []
    for (kind, name), doc in found.items():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except jsonschema.ValidationError as exc:
            problems.append(f"{kind}/{name}: {exc.message} at {list(exc.path)}")
    assert problems == []
    assert len(found) >= 8


def test_the_kustomization_applies_every_manifest():
    (kustomization,) = manifests()["kustomization.yaml"]
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def _deployment() -> dict[str, Any]:
    return resources()[("Deployment", "license-proxy")]


def _container() -> dict[str, Any]:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    return container


def _proxy_toml(tmp_path: Path) -> Path:
    """The ConfigMap's proxy.toml, its /etc/license-proxy files made real under tmp_path."""
    text = resources()[("ConfigMap", "license-proxy")]["data"]["proxy.toml"]
    text = text.replace("/etc/license-proxy/", f"{tmp_path}/")
    ca = CertificateAuthority()
    for folder in ("tls", "client-ca", "keys"):
        (tmp_path / folder).mkdir()
    (tmp_path / "tls" / "tls.crt").write_bytes(ca.server().cert_pem)
    server = ca.server()
    (tmp_path / "tls" / "tls.crt").write_bytes(server.cert_pem)
    (tmp_path / "tls" / "tls.key").write_bytes(server.key_pem)
    ca.write(tmp_path / "client-ca", "ca")
    (tmp_path / "client-ca" / "ca.pem").rename(tmp_path / "client-ca" / "ca.crt")
    (tmp_path / "keys" / "redis-password").write_text("redis-password")
    (tmp_path / "keys" / "axinom-com-key").write_text("A" * 43 + "=")
    (tmp_path / "keys" / "admin-token-secret").write_text("s" * 48)
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    return path


def test_the_shipped_config_passes_check_config(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "rediss://redis.media.example:6380/0")
    config = _proxy_toml(tmp_path)
    pipeline = build_pipeline(load_toml(config), base_dir=tmp_path)
    server = pipeline.server
    assert server.workers == "auto"
    assert server.grpc.tls is not None and server.grpc.tls.client_ca is not None
    assert server.http.tls is not None
    assert pipeline.services.state.kind == "redis"
    # the listeners are the container's ports
    ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert (ports["grpc"], ports["https"]) == (server.grpc.port, server.http.port)
    assert pipeline.admin is not None and ports["admin"] == pipeline.admin.port
    # every env: reference is set by the Deployment
    env = {e["name"] for e in _container()["env"]}
    assert set(re.findall(r'"env:(\w+)"', config.read_text())) <= env


def test_the_deployment_drains_within_its_grace_period(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    server = build_pipeline(load_toml(_proxy_toml(tmp_path)), base_dir=tmp_path).server
    pod = _deployment()["spec"]["template"]["spec"]
    pre_stop = _container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop == server.shutdown_delay
    needed = pre_stop + server.shutdown_delay + server.shutdown_grace + STOP_MARGIN
    assert pod["terminationGracePeriodSeconds"] >= needed


def test_probes_readiness_and_liveness():
    container = _container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    named = {p["name"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in named
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"  # the listener serves TLS


def test_the_pod_runs_unprivileged_with_whole_cpus():
    pod = _deployment()["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # the metrics files of the workers need a writable /tmp
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    resources = container["resources"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"]
    assert float(resources["limits"]["cpu"]).is_integer()


def test_services_budget_and_autoscaler_select_the_pods():
    found = resources()
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in _container()["ports"]}
    services = [doc for (kind, _), doc in found.items() if kind == "Service"]
    # players and services get a Service each; the admin port is scraped per pod
    assert {s["spec"]["ports"][0]["targetPort"] for s in services} == port_names - {"admin"}
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
    budget = found[("PodDisruptionBudget", "license-proxy")]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = found[("HorizontalPodAutoscaler", "license-proxy")]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "license-proxy")
    # every Secret and ConfigMap the pod mounts or reads is shipped (license-proxy-tls comes
    # from cert-manager or the operator's PKI)
    pod = _deployment()["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        if "configMap" in volume:
            assert ("ConfigMap", volume["configMap"]["name"]) in found
        if "secret" in volume and volume["secret"]["secretName"] != "license-proxy-tls":
            assert ("Secret", volume["secret"]["secretName"]) in found


# -- the Dockerfile, read statically (no docker engine here) ------------------------------


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by FROM."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_dockerfile_builds_wheels_then_installs_them_unprivileged():
    build, final = _stages()
    assert build[0].endswith(" AS build")
    assert any("sh deploy/build-wheels.sh" in line for line in build)
    assert "COPY --from=build /wheels /wheels" in final
    (install,) = [line for line in final if line.startswith("RUN ")]
    assert "install-wheels.sh /wheels /opt/license-proxy" in install
    # no compiler, no package manager, no index in the final image
    assert not re.search(r"apt-get|apk |gcc|g\+\+|clang|build-essential|pip install", install)
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "STOPSIGNAL SIGTERM" in final
    assert 'ENTRYPOINT ["license-proxy"]' in final
    assert "slim" in DOCKERFILE.read_text().split("PYTHON_IMAGE=")[1].split()[0]


def test_the_dockerfile_serves_the_port_the_manifests_expect():
    (final,) = _stages()[1:]
    exposed = {int(p) for line in final if line.startswith("EXPOSE ") for p in line.split()[1:]}
    assert {p["containerPort"] for p in _container()["ports"]} == exposed
    command = next(line for line in final if line.startswith("CMD "))
    assert _container()["args"] == yaml.safe_load(command[4:])
