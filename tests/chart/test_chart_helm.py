"""The chart lints and renders with helm 3 and 4 for every ci/*-values.yaml, installs with
--dry-run, and every manifest validates against the Kubernetes schemas (1.29 and newest)."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_testlib import CHART, CI_VALUES, HELMS, NAMESPACE, RELEASE, helm, render, value_args
from l5d_testing import Processes, free_port, wait_for_port

HERE = Path(__file__).resolve().parent

VALUES_CASES = [pytest.param(p, id=p.name) for p in CI_VALUES]
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def test_ci_values_files_exist() -> None:
    names = {p.name for p in CI_VALUES}
    assert {"default-values.yaml", "mesh-only-values.yaml", "tuned-values.yaml"} <= names


@pytest.mark.parametrize("version", sorted(HELMS))
@pytest.mark.parametrize("values_file", VALUES_CASES)
def test_lint_strict(version: str, values_file: Path) -> None:
    result = helm(
        version,
        "lint",
        "--strict",
        "--with-subcharts",
        str(CHART),
        "--namespace",
        NAMESPACE,
        *value_args([values_file]),
    )
    assert "4 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("values_file", VALUES_CASES)
def test_template_validates_against_kubernetes_schemas(values_file: Path) -> None:
    docs = render("helm4", [values_file])
    assert any(d["kind"] == "DaemonSet" for d in docs)
    for doc in docs:
        for k8s in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, k8s, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise AssertionError(
                    f"{doc['kind']} {doc['metadata']['name']} invalid for Kubernetes {k8s}: "
                    f"{e.message} at {list(e.path)}"
                ) from e


@pytest.mark.parametrize("values_file", VALUES_CASES)
def test_helm3_renders_what_helm4_renders(values_file: Path) -> None:
    # So the manifests validated above are also helm 3's.  Random parts (the Grafana admin
    # password) aside, both helm versions agree.
    def stable(docs: list[dict]) -> list[dict]:
        return [d for d in docs if d["kind"] != "Secret"]

    helm3 = render("helm3", [values_file])
    assert stable(helm3) == stable(render("helm4", [values_file]))


@pytest.fixture
def discovery_kubeconfig(processes: Processes, tmp_path: Path) -> Path:
    """helm 3.18's `install --dry-run=client` still asks a cluster for its version and API
    kinds: a discovery-only fake API on loopback answers (kinds validated separately)."""
    port = free_port()
    processes.start(
        sys.executable, str(HERE / "chart_fake_discovery.py"), "--port", str(port), name="discovery"
    )
    wait_for_port("127.0.0.1", port)
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "users": [],
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "contexts": [
                    {"name": "fake", "context": {"cluster": "fake", "namespace": NAMESPACE}}
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize("version", sorted(HELMS))
def test_install_dry_run_client(version: str, request: pytest.FixtureRequest) -> None:
    # helm 4 renders an install without any cluster; helm 3 gets the discovery-only fake.
    if version == "helm4":
        result = helm(
            version, "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"
        )
    else:
        result = helm(
            version,
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
            "--disable-openapi-validation",
            kubeconfig=request.getfixturevalue("discovery_kubeconfig"),
        )
    assert "STATUS: pending-install" in result.stdout
    assert "kind: DaemonSet" in result.stdout
    # NOTES.txt tells the user the next commands.
    assert "http_proxy" in result.stdout and "$(NODE_NAME):4140" in result.stdout
    assert f"port-forward service/{RELEASE}-l5d-twisted 9990" in result.stdout
    assert f"port-forward service/{RELEASE}-grafana 3000" in result.stdout
    assert f"helm test {RELEASE}" in result.stdout
    # The admin is on the pod's IP, which port-forward cannot reach: NOTES says how to switch.
    assert "--set mesh.admin.bindPodIP=false" in result.stdout
    assert f"NetworkPolicy {RELEASE}-l5d-twisted" in result.stdout


def test_subcharts_are_local_and_switchable() -> None:
    docs = render("helm4", [CHART / "ci" / "mesh-only-values.yaml"])
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("DaemonSet", f"{RELEASE}-l5d-twisted") in names
    assert not any(
        d["metadata"]["name"]
        in {"hello", "world-v1", f"{RELEASE}-prometheus", f"{RELEASE}-grafana"}
        for d in docs
    )
    full = {(d["kind"], d["metadata"]["name"]) for d in render("helm4")}
    assert {
        ("Deployment", "hello"),
        ("Deployment", "world-v1"),
        ("Deployment", f"{RELEASE}-prometheus"),
        ("Deployment", f"{RELEASE}-grafana"),
    } <= full
    chart_yaml = (CHART / "Chart.yaml").read_text()
    assert (
        "repository: file://charts/" in chart_yaml
        and "http" not in chart_yaml.split("dependencies:")[1]
    )


@pytest.mark.parametrize("version", sorted(HELMS))
def test_package_is_self_contained(version: str, tmp_path: Path) -> None:
    # The packaged chart carries its subcharts and dashboards, and none of the dev tooling.
    helm(version, "package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("l5d-twisted-*.tgz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "l5d-twisted/charts/prometheus/Chart.yaml" in names
    assert "l5d-twisted/dashboards/l5d-twisted-top-line.json" in names
    assert not [n for n in names if "/tools/" in n or n.endswith(".py")]
    rendered = helm(version, "template", RELEASE, str(archive), "--namespace", NAMESPACE).stdout
    assert "kind: DaemonSet" in rendered and "l5d-twisted-top-line.json" in rendered
