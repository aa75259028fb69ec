"""The chart's optional namerd (namerd.enabled): its Deployment, Service, ConfigMap, CRD, RBAC
and NetworkPolicy render, lint and validate; the configs rendered pass namerd's and the mesh's
own checks; the mesh routers ask namerd instead of using a static dtab; RBAC is least privilege."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_testlib import CHART, HELMS, NAMESPACE, RELEASE, find, helm, mesh_config_text, render

from l5d_twisted.namerd import k8s_store

ON = ("namerd.enabled=true",)
NAMERD = f"{RELEASE}-l5d-twisted-namerd"
MESH = f"{RELEASE}-l5d-twisted"
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
CRD = CHART / "crds" / "dtabs.l5d.io.yaml"


def namerd_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["metadata"]["name"].startswith(NAMERD)]


def l5d(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l5d_twisted", *args], capture_output=True, text=True, timeout=60
    )


def test_off_by_default_the_routers_keep_their_static_dtab() -> None:
    docs = render("helm4")
    assert namerd_docs(docs) == []
    routers = yaml.safe_load(mesh_config_text(docs))["routers"]
    assert [r["interpreter"]["kind"] for r in routers] == ["default", "default"]
    assert all("/host/world => /srv/world-v1;" in r["dtab"] for r in routers)


@pytest.mark.parametrize("version", sorted(HELMS))
def test_lint_strict_with_namerd(version: str) -> None:
    result = helm(
        version,
        "lint",
        "--strict",
        "--with-subcharts",
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--set",
        ON[0],
    )
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("version", sorted(HELMS))
def test_renders_the_namerd_resources_and_they_validate(version: str) -> None:
    docs = render(version, sets=ON)
    got = sorted((d["kind"], d["metadata"]["name"]) for d in namerd_docs(docs))
    assert got == [
        ("ClusterRoleBinding", f"{NAMERD}-discovery"),
        ("ConfigMap", f"{NAMERD}-config"),
        ("Deployment", NAMERD),
        ("NetworkPolicy", NAMERD),
        ("Role", f"{NAMERD}-dtabs"),
        ("RoleBinding", f"{NAMERD}-dtabs"),
        ("Service", NAMERD),
        ("ServiceAccount", NAMERD),
    ]
    crd = yaml.safe_load(CRD.read_text())
    for doc in [*namerd_docs(docs), crd]:
        for k8s in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, k8s, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise AssertionError(
                    f"{doc['kind']} {doc['metadata']['name']} invalid for Kubernetes {k8s}: "
                    f"{e.message} at {list(e.path)}"
                ) from e


def test_the_crd_is_the_storage_s_resource_and_follows_helm_s_crds_convention() -> None:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{k8s_store.PLURAL}.{k8s_store.GROUP}" == "dtabs.l5d.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == (k8s_store.GROUP, "Namespaced")
    assert (spec["names"]["kind"], spec["names"]["plural"]) == (k8s_store.KIND, k8s_store.PLURAL)
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (
        k8s_store.VERSION,
        True,
        True,
    )
    entry = version["schema"]["openAPIV3Schema"]["properties"]["dentries"]["items"]
    assert entry["required"] == ["prefix", "dst"]
    # crds/: not templated, installed before the templates, kept by helm uninstall
    assert "{{" not in CRD.read_text()
    plain = helm("helm4", "template", RELEASE, str(CHART), "-n", NAMESPACE, "--set", ON[0]).stdout
    assert "kind: CustomResourceDefinition" not in plain
    with_crds = helm(
        "helm4", "template", RELEASE, str(CHART), "-n", NAMESPACE, "--include-crds", "--set", ON[0]
    ).stdout
    assert "name: dtabs.l5d.io" in with_crds


def test_rendered_configs_pass_namerd_s_and_the_mesh_s_checks(tmp_path: Path) -> None:
    docs = render("helm4", sets=ON)
    namerd_yaml = find(docs, "ConfigMap", f"{NAMERD}-config")["data"]["namerd.yaml"]
    (tmp_path / "namerd.yaml").write_text(namerd_yaml)
    result = l5d("namerd", "--check", str(tmp_path / "namerd.yaml"))
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
    config = yaml.safe_load(namerd_yaml)
    assert config["storage"]["kind"] == "io.l5d.k8s"
    assert config["storage"]["namespace"] == NAMESPACE
    assert "host" not in config["storage"]  # in-cluster, with the service account
    # the initial dtab is the mesh's dtab, seeded only when absent
    assert "/host/world => /srv/world-v1;" in config["storage"]["namespaces"]["default"]
    assert config["interfaces"] == [
        {"kind": "io.l5d.httpController", "ip": "0.0.0.0", "port": 4180}
    ]

    mesh = mesh_config_text(docs)
    (tmp_path / "linkerd.yaml").write_text(mesh)
    result = l5d("check", str(tmp_path / "linkerd.yaml"))
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
    for router in yaml.safe_load(mesh)["routers"]:
        assert "dtab" not in router  # sent after namerd's, it would win
        interpreter = router["interpreter"]
        assert interpreter["kind"] == "io.l5d.namerd.http"
        assert interpreter["experimental"] is True
        assert interpreter["dst"] == f"/#/io.l5d.k8s/{NAMESPACE}/api/{NAMERD}"
        assert interpreter["namespace"] == "default"
        assert interpreter["transformers"]  # the daemonset/localnode transformers still apply
    # the dst's port name is the Service's
    service = find(docs, "Service", NAMERD)
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"api": 4180, "admin": 9991}


def test_a_custom_dtab_namespace_and_dtab(tmp_path: Path) -> None:
    docs = render(
        "helm4",
        sets=(*ON, "namerd.dtabNamespace=prod", "namerd.dtab=/svc => /#/io.l5d.k8s/apps/http"),
    )
    config = yaml.safe_load(find(docs, "ConfigMap", f"{NAMERD}-config")["data"]["namerd.yaml"])
    assert config["storage"]["namespaces"] == {"prod": "/svc => /#/io.l5d.k8s/apps/http;\n"}
    routers = yaml.safe_load(mesh_config_text(docs))["routers"]
    assert {r["interpreter"]["namespace"] for r in routers} == {"prod"}
    bad = helm(
        "helm4",
        "template",
        RELEASE,
        str(CHART),
        "--set",
        ON[0],
        "--set",
        "namerd.dtabNamespace=Not_A_Name",
        check=False,
    )
    assert bad.returncode != 0 and "dtabNamespace" in bad.stderr


def test_the_deployment_runs_namerd_non_root_on_a_read_only_root() -> None:
    docs = render("helm4", sets=ON)
    deployment = find(docs, "Deployment", NAMERD)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == NAMERD
    assert pod["securityContext"]["runAsNonRoot"] is True
    (init,) = pod["initContainers"]
    assert init["args"] == ["namerd", "--check", "/config/namerd.yaml"]
    (container,) = pod["containers"]
    assert container["command"] == ["l5d-twisted"]
    assert container["args"] == ["namerd", "/config/namerd.yaml"]
    for c in (init, container):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "api": 4180,
        "admin": 9991,
    }
    labels = deployment["spec"]["selector"]["matchLabels"]
    # the mesh's Service and NetworkPolicy do not select namerd's pods
    mesh_selector = find(docs, "Service", MESH)["spec"]["selector"]
    assert not mesh_selector.items() <= pod_labels(deployment).items()
    assert labels.items() <= pod_labels(deployment).items()


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("cluster_wide", [True, False])
def test_rbac_is_least_privilege(cluster_wide: bool) -> None:
    docs = render("helm4", sets=(*ON, f"rbac.clusterWide={str(cluster_wide).lower()}"))
    role = find(docs, "Role", f"{NAMERD}-dtabs")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["l5d.io"],
            "resources": ["dtabs"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ]
    binding = find(docs, "RoleBinding", f"{NAMERD}-dtabs")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": NAMERD, "namespace": NAMESPACE}
    ]
    # discovery's reads through the mesh's own role, nothing more
    kind = "ClusterRoleBinding" if cluster_wide else "RoleBinding"
    discovery = find(docs, kind, f"{NAMERD}-discovery")
    assert discovery["roleRef"]["name"] == MESH
    mesh_role = find(docs, "ClusterRole" if cluster_wide else "Role", MESH)
    for rule in mesh_role["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
    # no wildcard anywhere, and the mesh's own account gets no dtab rights
    for doc in docs:
        for rule in doc.get("rules", []) if doc["kind"] in ("Role", "ClusterRole") else []:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            if "dtabs" in rule["resources"]:
                assert doc["metadata"]["name"] == f"{NAMERD}-dtabs"
    none = render("helm4", sets=(*ON, "rbac.create=false"))
    assert [d for d in namerd_docs(none) if "Role" in d["kind"]] == []


def test_network_policy_admits_the_mesh_and_the_operator_to_the_api() -> None:
    docs = render(
        "helm4",
        sets=(*ON, "namerd.networkPolicy.from[0].ipBlock.cidr=10.9.0.0/16"),
    )
    policy = find(docs, "NetworkPolicy", NAMERD)
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == find(docs, "Service", NAMERD)["spec"]["selector"]
    )
    api, admin = policy["spec"]["ingress"]
    assert api["ports"] == [{"port": 4180, "protocol": "TCP"}]
    mesh_labels = find(docs, "Service", MESH)["spec"]["selector"]
    assert api["from"] == [
        {"podSelector": {"matchLabels": mesh_labels}},
        {"ipBlock": {"cidr": "10.9.0.0/16"}},
    ]
    assert admin == {
        "ports": [{"port": 9991, "protocol": "TCP"}],
        "from": [{"ipBlock": {"cidr": "10.9.0.0/16"}}],
    }
    # no operator peers: the API for the mesh only, no admin rule (a rule without from admits all)
    (only,) = find(render("helm4", sets=ON), "NetworkPolicy", NAMERD)["spec"]["ingress"]
    assert only["ports"] == [{"port": 4180, "protocol": "TCP"}]
    assert "NetworkPolicy" not in {
        d["kind"] for d in namerd_docs(render("helm4", sets=(*ON, "networkPolicy.enabled=false")))
    }


def test_notes_show_the_one_line_traffic_shift() -> None:
    notes = helm(
        "helm4", "install", "--dry-run=client", RELEASE, str(CHART), "-n", NAMESPACE, "--set", ON[0]
    ).stdout.split("NOTES:", 1)[1]
    assert (
        f"kubectl -n {NAMESPACE} port-forward service/{NAMERD} 4180 & l5d-twisted dtab update "
        "--base-url http://127.0.0.1:4180 default new.dtab"
    ) in notes
    assert "/api/1/dtabs/default" in notes
    off = helm(
        "helm4", "install", "--dry-run=client", RELEASE, str(CHART), "-n", NAMESPACE
    ).stdout.split("NOTES:", 1)[1]
    assert "namerd" not in off
