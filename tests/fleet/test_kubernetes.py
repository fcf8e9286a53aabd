"""The Kubernetes manifests pass a strict offline schema check, and the proxy's nginx
configuration inside them passes `nginx -t`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from executor.daemon.server import SERVICE_NAME
from tests.fleet.conftest import self_signed

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_manifest_file_is_checked() -> None:
    names = sorted(p.name for p in MANIFESTS.glob("*.yaml"))
    assert names == sorted(
        [
            "daemon.yaml",
            "namespace.yaml",
            "prometheus-scrape.yaml",
            "proxy.yaml",
            "runtimeclass-gvisor.yaml",
            "secrets.example.yaml",
        ]
    )


@pytest.mark.parametrize("path", sorted(MANIFESTS.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_passes_strict_schema(path: Path) -> None:
    docs = _documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_schema_check_rejects_a_broken_manifest() -> None:
    broken = _documents(MANIFESTS / "daemon.yaml")[1]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_daemonset_probes_use_grpc_health_and_advertise_the_pod() -> None:
    daemonset = next(d for d in _documents(MANIFESTS / "daemon.yaml") if d["kind"] == "DaemonSet")
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["grpc"]["port"] == 50051
    # Readiness follows capacity (the Executor service); liveness must not (overall "").
    assert container["readinessProbe"]["grpc"]["service"] == SERVICE_NAME
    assert "service" not in container["livenessProbe"]["grpc"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CORRAL_ADVERTISE_ADDRESS"] == "$(POD_IP):50051"
    assert env["CORRAL_TLS_CERT"] and env["CORRAL_TLS_KEY"]  # tokens never in clear
    assert container["resources"]["requests"]


def test_proxy_config_passes_nginx_syntax_check(nginx_bin: str, tmp_path: Path) -> None:
    configmap = next(d for d in _documents(MANIFESTS / "proxy.yaml") if d["kind"] == "ConfigMap")
    text = configmap["data"]["nginx.conf"]
    cert, key = self_signed(tmp_path)
    text = (
        text.replace("/tmp/", f"{tmp_path}/")
        .replace("/etc/corral/proxy-tls/tls.crt", str(cert))
        .replace("/etc/corral/proxy-tls/tls.key", str(key))
        .replace("/etc/corral/daemon-ca/ca.crt", str(cert))
        .replace("listen 8443", "listen 127.0.0.1:8443")
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    proc = subprocess.run(
        [nginx_bin, "-t", "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "err.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "syntax is ok" in proc.stderr
