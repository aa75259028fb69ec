"""The chart's safe defaults (issue 10 items 2, 6, 7; issue 11 items 3, 5): a NetworkPolicy
per port, the admin on the pod's IP with shutdown off, clients' routing headers off on the
outgoing router (staging turned on for both routers or refused), the drain and its grace
period, probes that need nothing but the image, and images pinned by digest in every pod."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_testlib import (
    CHART,
    HELMS,
    NAMESPACE,
    RELEASE,
    REPO,
    find,
    helm,
    mesh_config_text,
    render,
)

FULLNAME = f"{RELEASE}-l5d-twisted"
STAGING = CHART / "ci" / "staging-values.yaml"
MESH_ONLY = CHART / "ci" / "mesh-only-values.yaml"
TUNED = CHART / "ci" / "tuned-values.yaml"
DIGEST = "sha256:" + "ab" * 32
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def pod_specs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec of the chart by workload name (Pods, Deployments, DaemonSets)."""
    specs = {}
    for doc in docs:
        if doc["kind"] == "Pod":
            specs[doc["metadata"]["name"]] = doc["spec"]
        elif doc["kind"] in ("Deployment", "DaemonSet"):
            specs[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
    return specs


def pod_labels(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    doc = next(
        d
        for d in docs
        if d["metadata"]["name"] == name and d["kind"] in ("Pod", "Deployment", "DaemonSet")
    )
    meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
    return dict(meta["labels"])


def selects(peer: dict[str, Any], labels: dict[str, str], same_namespace: bool = True) -> bool:
    """Whether a NetworkPolicyPeer admits a pod with these labels (matchLabels only)."""
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" not in peer and not same_namespace:
        return False
    wanted = peer.get("podSelector", {}).get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def rules_by_port(policy: dict[str, Any]) -> dict[int, dict[str, Any]]:
    rules = {}
    for rule in policy["spec"]["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        rules[port["port"]] = rule
    return rules


def mesh_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = find(docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]["containers"]
    return container


def load(text: str) -> Any:
    from l5d_twisted.config import load_config

    return load_config(text, "linkerd.yaml")


# --- NetworkPolicy -------------------------------------------------------------------------


def test_network_policy_admits_each_port_only_to_its_clients() -> None:
    docs = render()
    policy = find(docs, "NetworkPolicy", FULLNAME)
    ds = find(docs, "DaemonSet", FULLNAME)
    mesh = pod_labels(docs, FULLNAME)
    assert policy["spec"]["podSelector"] == ds["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = rules_by_port(policy)
    assert sorted(rules) == [4140, 4141, 9990]

    # 4140 (the hostPort's target): any pod of any namespace, nothing from outside.
    assert rules[4140]["from"] == [{"namespaceSelector": {}}]
    # 4141: the mesh's own pods, and no one else of the chart.
    (peer,) = rules[4141]["from"]
    assert selects(peer, mesh)
    for other in (
        "hello",
        "world-v1",
        f"{RELEASE}-prometheus",
        f"{RELEASE}-grafana",
        f"{FULLNAME}-smoke-mesh",
    ):
        assert not selects(peer, pod_labels(docs, other)), other
    # 9990: the release's Prometheus (scrapes) and the helm test pods (admin ping) only.
    admin = rules[9990]["from"]
    allowed = {
        name
        for name in (
            "hello",
            "world-v1",
            f"{RELEASE}-prometheus",
            f"{RELEASE}-grafana",
            f"{FULLNAME}-smoke-mesh",
            FULLNAME,
        )
        if any(selects(p, pod_labels(docs, name)) for p in admin)
    }
    assert allowed == {f"{RELEASE}-prometheus", f"{FULLNAME}-smoke-mesh"}


def test_network_policy_admin_rule_is_dropped_rather_than_opened_when_it_has_no_peers() -> None:
    # A rule without `from` admits every source: with no Prometheus, no tests and no extra
    # peers the admin port must get no rule at all (only the node's own traffic, the probes).
    docs = render(values_files=[MESH_ONLY], sets=["tests.enabled=false"])
    rules = rules_by_port(find(docs, "NetworkPolicy", FULLNAME))
    assert sorted(rules) == [4140, 4141]
    assert all(rule.get("from") for rule in rules.values())
    # Tests on, Prometheus off: only the smoke pods.
    only_tests = rules_by_port(find(render(values_files=[MESH_ONLY]), "NetworkPolicy", FULLNAME))
    assert [
        p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in only_tests[9990]["from"]
    ] == ["l5d-twisted-smoke"]


def test_network_policy_extra_peers_and_open_outgoing() -> None:
    rules = rules_by_port(find(render(values_files=[STAGING]), "NetworkPolicy", FULLNAME))
    assert "from" not in rules[4140]  # networkPolicy.outgoing.from: [] -> any source
    assert {"ipBlock": {"cidr": "10.1.0.0/16", "except": ["10.1.2.0/24"]}} in rules[4141]["from"]
    assert {"ipBlock": {"cidr": "10.0.0.0/16"}} in rules[9990]["from"]
    assert len(rules[9990]["from"]) == 4  # prometheus, smoke, the two extras


@pytest.mark.parametrize(
    "files,sets",
    [([], ["networkPolicy.enabled=false"]), ([TUNED], [])],
    ids=["disabled", "host-network"],
)
def test_no_network_policy_when_disabled_or_on_the_host_network(
    files: list[Path], sets: list[str]
) -> None:
    # tuned-values.yaml sets mesh.hostNetwork: policies do not reliably cover such pods.
    assert yaml.safe_load(TUNED.read_text())["mesh"]["hostNetwork"] is True
    assert not [d for d in render(values_files=files, sets=sets) if d["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize(
    "values_file", [None, STAGING, MESH_ONLY], ids=["default", "staging", "mesh-only"]
)
def test_network_policy_validates_against_kubernetes_schemas(values_file: Path | None) -> None:
    policy = find(
        render(values_files=[values_file] if values_file else []), "NetworkPolicy", FULLNAME
    )
    for k8s in K8S_VERSIONS:
        kubernetes_validate.validate(policy, k8s, strict=True)


@pytest.mark.parametrize("version", sorted(HELMS))
def test_schema_rejects_a_peer_that_is_not_a_network_policy_peer(
    version: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"networkPolicy": {"admin": {"from": [{"cidr": "10.0.0.0/8"}]}}})
    )
    result = helm(version, "template", RELEASE, str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0 and "schema" in result.stderr and "cidr" in result.stderr, (
        result.stderr
    )


# --- admin on the pod IP, shutdown off -----------------------------------------------------


def test_admin_is_bound_to_the_pod_ip_with_shutdown_off() -> None:
    docs = render()
    c = mesh_container(docs)
    assert c["args"] == ["run", "/config/linkerd.yaml", "--admin-ip", "$(POD_IP)"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    admin = yaml.safe_load(mesh_config_text(docs))["admin"]
    assert admin["allowShutdown"] is False
    assert load(mesh_config_text(docs)).admin.allow_shutdown is False
    # Turned off: no flag, the config's 0.0.0.0 (kubectl port-forward reaches it).
    off = render(sets=["mesh.admin.bindPodIP=false"])
    assert mesh_container(off)["args"] == ["run", "/config/linkerd.yaml"]
    assert yaml.safe_load(mesh_config_text(off))["admin"]["ip"] == "0.0.0.0"


def test_run_refuses_an_admin_ip_that_is_not_an_address(tmp_path: Path) -> None:
    # The flag taken literally (no Kubernetes to expand it) is refused before anything listens.
    path = tmp_path / "linkerd.yaml"
    path.write_text(
        "admin:\n  port: 0\nrouters:\n  - protocol: http\n    servers:\n      - port: 0\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "run", str(path), "--admin-ip", "$(POD_IP)"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--admin-ip: expected an IP address" in result.stderr and "'$(POD_IP)'" in result.stderr


# --- trust: clients' routing headers --------------------------------------------------------


def servers(text: str) -> dict[str, Any]:
    """Each router's (only) server, as loaded by the project's config loader."""
    config = load(text)
    found = {}
    for router in config.routers:
        (server,) = router.servers
        found[router.label] = server
    return found


def test_outgoing_router_ignores_request_dtabs_by_default() -> None:
    text = mesh_config_text(render())
    raw = {r["label"]: r["servers"][0] for r in yaml.safe_load(text)["routers"]}
    for label in ("outgoing", "incoming"):
        assert raw[label]["clearContext"] is False
        assert raw[label]["requestDtab"] == {"enabled": False, "allowAddresses": False}
    loaded = servers(text)
    assert loaded["outgoing"].request_dtab.enabled is False
    assert loaded["outgoing"].request_dtab.allow_addresses is False
    assert loaded["incoming"].request_dtab.enabled is False
    assert loaded["outgoing"].clear_context is False


def test_staging_turns_request_dtabs_on_for_both_routers() -> None:
    loaded = servers(mesh_config_text(render(values_files=[STAGING])))
    for label in ("outgoing", "incoming"):
        assert loaded[label].request_dtab.enabled is True
        assert loaded[label].request_dtab.allow_addresses is True
    assert loaded["outgoing"].clear_context is True
    assert loaded["incoming"].clear_context is False


@pytest.mark.parametrize("version", sorted(HELMS))
@pytest.mark.parametrize("key", ["enabled", "allowAddresses"])
def test_staging_on_the_outgoing_router_alone_is_refused(version: str, key: str) -> None:
    # The incoming router binds the name again: without the forwarded dtab it would deliver a
    # staged request to the unstaged service.
    result = helm(
        version,
        "template",
        RELEASE,
        str(CHART),
        "--set",
        f"mesh.outgoing.requestDtab.{key}=true",
        check=False,
    )
    assert result.returncode != 0
    assert (
        f"mesh.outgoing.requestDtab.{key} needs mesh.incoming.requestDtab.{key} too: the incoming router would remove"
        in result.stderr
    )


# --- drain ----------------------------------------------------------------------------------


@pytest.mark.parametrize("drain_ms,grace_ms", [(5000, 10000), (8000, 30500), (0, 0)])
def test_drain_period_is_configured_and_covered_by_the_grace_period(
    drain_ms: int, grace_ms: int
) -> None:
    docs = render(
        sets=[f"mesh.admin.drainPeriodMs={drain_ms}", f"mesh.admin.shutdownGraceMs={grace_ms}"]
    )
    admin = load(mesh_config_text(docs)).admin
    assert (admin.drain_period_ms, admin.shutdown_grace_ms) == (drain_ms, grace_ms)
    spec = find(docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == math.ceil((drain_ms + grace_ms) / 1000) + 5
    # SIGTERM starts the drain: no preStop hook (the image has no shell or sleep to run one).
    assert "lifecycle" not in spec["containers"][0]


def test_default_drain_is_five_seconds() -> None:
    assert yaml.safe_load(mesh_config_text(render()))["admin"]["drainPeriodMs"] == 5000


# --- probes -------------------------------------------------------------------------------


def test_every_probe_of_the_project_image_is_an_http_get() -> None:
    # The image has no curl or shell: exec probes could only run `l5d-twisted`.
    docs = render()
    c = mesh_container(docs)
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/admin/ping", "port": "admin"}
    for name, spec in pod_specs(docs).items():
        for container in spec["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    assert set(container[probe]) & {"httpGet", "tcpSocket"}, (name, probe)
                    assert "exec" not in container[probe], (name, probe)


# --- images ---------------------------------------------------------------------------------


def test_default_image_is_the_locally_built_one_in_every_project_pod() -> None:
    docs = render()
    project = {
        FULLNAME,
        "hello",
        "world-v1",
        f"{FULLNAME}-smoke-mesh",
        f"{FULLNAME}-smoke-prometheus",
        f"{FULLNAME}-smoke-grafana",
    }
    specs = pod_specs(docs)
    assert project <= set(specs)
    for name in project:
        for container in specs[name]["containers"]:
            assert container["image"] == "localhost/l5d-twisted:0.1.0", name
            assert container["imagePullPolicy"] == "IfNotPresent", name


def test_digest_pins_every_pod_of_the_chart() -> None:
    sets = [
        f"{prefix}image.digest={DIGEST}"
        for prefix in ("", "hello-world.", "prometheus.", "grafana.")
    ]
    specs = pod_specs(render(sets=[*sets, "image.tag=ignored"]))
    expected = {
        FULLNAME: "localhost/l5d-twisted",
        "hello": "localhost/l5d-twisted",
        "world-v1": "localhost/l5d-twisted",
        f"{FULLNAME}-smoke-mesh": "localhost/l5d-twisted",
        f"{FULLNAME}-smoke-prometheus": "localhost/l5d-twisted",
        f"{FULLNAME}-smoke-grafana": "localhost/l5d-twisted",
        f"{RELEASE}-prometheus": "prom/prometheus",
        f"{RELEASE}-grafana": "grafana/grafana",
    }
    assert set(specs) == set(expected)
    for name, repository in expected.items():
        for container in specs[name]["containers"] + specs[name].get("initContainers", []):
            assert container["image"] == f"{repository}@{DIGEST}", name


def test_staging_values_pin_by_digest_on_a_registry() -> None:
    specs = pod_specs(render(values_files=[STAGING]))
    digest = yaml.safe_load(STAGING.read_text())["image"]["digest"]
    assert (
        specs[FULLNAME]["containers"][0]["image"]
        == f"registry.example.com/mesh/l5d-twisted@{digest}"
    )
    assert (
        specs["hello"]["containers"][0]["image"]
        == f"registry.example.com/mesh/l5d-twisted@{digest}"
    )


@pytest.mark.parametrize("version", sorted(HELMS))
@pytest.mark.parametrize("prefix", ["", "hello-world.", "prometheus.", "grafana."])
def test_schema_rejects_a_malformed_digest(version: str, prefix: str) -> None:
    result = helm(
        version,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--set",
        f"{prefix}image.digest=sha256:abc",
        check=False,
    )
    assert result.returncode != 0 and "digest" in result.stderr, result.stderr
