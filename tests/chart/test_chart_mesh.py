"""What the rendered mesh resources say: the reference linkerd 1 DaemonSet deployment,
least-privilege RBAC, hardened pods, and a config that rolls the pods when it changes."""

from __future__ import annotations

import math

import yaml
from chart_testlib import CHART, NAMESPACE, RELEASE, find, mesh_config_text, render

FULLNAME = f"{RELEASE}-l5d-twisted"


def mesh_container(docs: list[dict]) -> dict:
    ds = find(docs, "DaemonSet", FULLNAME)
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    return container


def test_daemonset_runs_the_mesh_with_ports_env_and_probes() -> None:
    docs = render()
    ds = find(docs, "DaemonSet", FULLNAME)
    c = mesh_container(docs)
    assert c["command"] + c["args"] == [
        "l5d-twisted",
        "run",
        "/config/linkerd.yaml",
        "--admin-ip",
        "$(POD_IP)",
    ]
    ports = {p["name"]: p for p in c["ports"]}
    assert ports["outgoing"]["containerPort"] == 4140 and ports["outgoing"]["hostPort"] == 4140
    assert ports["incoming"]["containerPort"] == 4141 and "hostPort" not in ports["incoming"]
    assert ports["admin"]["containerPort"] == 9990
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/admin/ping", "port": "admin"}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/config"] == "config"


def test_pods_are_hardened() -> None:
    docs = render()
    pod = find(docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]
    sc = mesh_container(docs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # Every other workload of the chart too (sample app, Prometheus, Grafana, test pods).
    for doc in docs:
        spec = (
            doc["spec"]
            if doc["kind"] == "Pod"
            else doc.get("spec", {}).get("template", {}).get("spec")
        )
        if not spec:
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        for container in spec["containers"]:
            csc = container["securityContext"]
            assert (
                csc["allowPrivilegeEscalation"] is False and csc["readOnlyRootFilesystem"] is True
            ), container["name"]
            assert csc["capabilities"]["drop"] == ["ALL"], container["name"]


def test_termination_grace_exceeds_the_drain_grace() -> None:
    for grace_ms in (10000, 30500, 0):
        docs = render(sets=[f"mesh.admin.shutdownGraceMs={grace_ms}"])
        seconds = find(docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
        assert seconds > (5000 + grace_ms) / 1000  # the default drain period, then the grace
        assert seconds == math.ceil((5000 + grace_ms) / 1000) + 5
        assert yaml.safe_load(mesh_config_text(docs))["admin"]["shutdownGraceMs"] == grace_ms


def test_config_checksum_rolls_pods_on_config_change() -> None:
    def checksum(*sets: str) -> str:
        ds = find(render(sets=list(sets)), "DaemonSet", FULLNAME)
        return str(ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base = checksum()
    assert len(base) == 64
    assert checksum("mesh.recentRequests.capacity=20") != base
    assert checksum("podAnnotations.a=b") == base


def test_rendered_config_is_the_reference_daemonset_deployment() -> None:
    config = yaml.safe_load(mesh_config_text(render()))
    # 0.0.0.0 in the shared file; each pod's own IP comes with --admin-ip.
    assert config["admin"] == {
        "ip": "0.0.0.0",
        "port": 9990,
        "drainPeriodMs": 5000,
        "shutdownGraceMs": 10000,
        "allowShutdown": False,
    }
    assert config["namers"] == [{"kind": "io.l5d.k8s"}]  # no host: in-cluster API access
    assert [t["kind"] for t in config["telemetry"]] == [
        "io.l5d.prometheus",
        "io.l5d.recentRequests",
    ]
    outgoing, incoming = config["routers"]
    assert (outgoing["label"], incoming["label"]) == ("outgoing", "incoming")
    untrusted = {"clearContext": False, "requestDtab": {"enabled": False, "allowAddresses": False}}
    assert outgoing["servers"] == [{"port": 4140, "ip": "0.0.0.0", **untrusted}]
    assert incoming["servers"] == [{"port": 4141, "ip": "0.0.0.0", **untrusted}]
    expected_dtab = [
        f"/srv => /#/io.l5d.k8s/{NAMESPACE}/http;",
        "/host => /srv;",
        "/svc => /host;",
        "/host/world => /srv/world-v1;",
    ]
    for router in (outgoing, incoming):
        assert router["protocol"] == "http"
        assert router["dtab"].split("\n")[:-1] == expected_dtab
        assert router["interpreter"]["kind"] == "default"
    (daemonset,) = outgoing["interpreter"]["transformers"]
    assert daemonset == {
        "kind": "io.l5d.k8s.daemonset",
        "namespace": NAMESPACE,
        "service": FULLNAME,
        "port": "incoming",
        "hostNetwork": False,
    }
    (localnode,) = incoming["interpreter"]["transformers"]
    assert localnode == {"kind": "io.l5d.k8s.localnode", "hostNetwork": False}


def test_daemonset_transformer_finds_the_service_and_its_incoming_port() -> None:
    docs = render(values_files=[CHART / "ci" / "tuned-values.yaml"])
    config = yaml.safe_load(str(find(docs, "ConfigMap", "l5d-config")["data"]["linkerd.yaml"]))
    (transformer,) = config["routers"][0]["interpreter"]["transformers"]
    service = find(docs, "Service", transformer["service"])
    assert transformer["namespace"] == service["metadata"]["namespace"]
    assert transformer["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert transformer["hostNetwork"] is True
    assert config["routers"][0]["client"]["kind"] == "io.l5d.static"
    assert config["routers"][1]["service"]["configs"][0]["totalTimeoutMs"] == 10000


def test_rbac_grants_only_endpoint_reads() -> None:
    docs = render()
    role = find(docs, "ClusterRole", FULLNAME)
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    binding = find(docs, "ClusterRoleBinding", FULLNAME)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
    ]
    assert (
        find(docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]["serviceAccountName"]
        == FULLNAME
    )
    namespaced = render(values_files=[CHART / "ci" / "mesh-only-values.yaml"])
    assert not [d for d in namespaced if d["kind"].startswith("Cluster")]
    assert find(namespaced, "Role", FULLNAME)["rules"] == role["rules"]


def test_selector_labels_are_stable_and_apart() -> None:
    docs = render()
    ds = find(docs, "DaemonSet", FULLNAME)
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "l5d-twisted",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert find(docs, "Service", FULLNAME)["spec"]["selector"] == selector
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert labels.items() >= selector.items() and "app.kubernetes.io/version" in labels
    # An upgrade to another version keeps the selector.
    other = find(render(sets=["image.tag=9.9.9", "commonLabels.team=x"]), "DaemonSet", FULLNAME)
    assert other["spec"]["selector"]["matchLabels"] == selector


def test_sample_app_sends_through_the_node_proxy() -> None:
    docs = render()
    for name, port, kind in (("hello", 7777, "hello"), ("world-v1", 7778, "world")):
        service = find(docs, "Service", name)
        assert service["spec"]["clusterIP"] == "None"
        assert (
            service["spec"]["ports"][0]["name"] == "http"
            and service["spec"]["ports"][0]["port"] == port
        )
        (c,) = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert c["command"] + c["args"][:6] == [
            "l5d-twisted",
            "example",
            kind,
            "--ip",
            "0.0.0.0",
            "--port",
            str(port),
        ]
        env = {e["name"]: e for e in c["env"]}
        assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    (hello,) = find(docs, "Deployment", "hello")["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in hello["env"]]
    env = {e["name"]: e for e in hello["env"]}
    assert env["http_proxy"]["value"] == "$(NODE_NAME):4140"
    assert names.index("NODE_NAME") < names.index("http_proxy")  # $(VAR) needs VAR defined first
    assert "--target" in hello["args"] and "http://world/" in hello["args"]


def test_helm_test_pods_run_smoke() -> None:
    docs = render()
    pods = [d for d in docs if d["kind"] == "Pod"]
    assert {p["metadata"]["annotations"]["helm.sh/hook"] for p in pods} == {"test"}
    # A test pod is never selected as a mesh pod.
    selector = find(docs, "Service", FULLNAME)["spec"]["selector"]
    for pod in pods:
        assert not pod["metadata"]["labels"].items() >= selector.items(), pod["metadata"]["name"]
    commands = {
        p["metadata"]["name"]: p["spec"]["containers"][0]["command"]
        + p["spec"]["containers"][0]["args"]
        for p in pods
    }
    mesh = commands[f"{FULLNAME}-smoke-mesh"]
    assert mesh[:2] == ["l5d-twisted", "smoke"]
    assert (
        f"http://{FULLNAME}.{NAMESPACE}.svc:9990" in mesh
        and "$(HOST_IP):4140" in mesh
        and "http://hello/" in mesh
    )
    assert (
        f"http://{RELEASE}-prometheus.{NAMESPACE}.svc:9090"
        in commands[f"{FULLNAME}-smoke-prometheus"]
    )
    grafana = commands[f"{FULLNAME}-smoke-grafana"]
    assert (
        f"http://{RELEASE}-grafana.{NAMESPACE}.svc:3000" in grafana
        and "l5d-twisted-top-line" in grafana
    )


def test_grafana_mounts_the_dashboards_configmap() -> None:
    docs = render()
    deployment = find(docs, "Deployment", f"{RELEASE}-grafana")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    name = volumes["dashboards"]["configMap"]["name"]
    dashboards = find(docs, "ConfigMap", name)
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    assert sorted(dashboards["data"]) == files
    datasources = yaml.safe_load(
        find(docs, "ConfigMap", f"{RELEASE}-grafana")["data"]["datasources.yaml"]
    )
    assert datasources["datasources"][0]["url"] == f"http://{RELEASE}-prometheus:9090"
