"""The rendered chart RUNS: two simulated nodes on loopback (127.0.1.x and 127.0.2.x).

Everything starts from `helm template` output: the mesh config exactly as rendered into the
ConfigMap, the DaemonSet's and Deployments' commands and environment, the Prometheus config
and rules, the dashboards ConfigMap, and the `helm test` pods' smoke commands.  Only what a
cluster would provide is substituted: the API server (kmock's KubernetesEmulator, holding
the EndpointSlices the cluster would have), pod/node addresses and ports on loopback, node
name -> node IP, Service DNS names -> a pod's address, and Kubernetes discovery -> file_sd
carrying the same `__meta_kubernetes_*` labels (Debian's Prometheus has no Kubernetes SD).

The request path is the reference DaemonSet deployment's: smoke -> node's outgoing router
-> daemonset transformer -> incoming router on hello's node -> hello -> its node's outgoing
router -> incoming router on world's node (the other node) -> world.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_testlib import (
    NAMESPACE,
    RELEASE,
    REPO,
    endpoint_slice,
    find,
    localise,
    mesh_config_text,
    prometheus_files,
    render,
)
from l5d_testing import Processes, free_port, wait_for_port, wait_until

HERE = Path(__file__).resolve().parent
FULLNAME = f"{RELEASE}-l5d-twisted"
# Fast scrapes for a short test, and a world that fails now and then, so failure and 5XX
# series (and the SLO rules built on them) exist.
SETS = (
    "prometheus.scrapeInterval=1s",
    "prometheus.evaluationInterval=1s",
    "hello-world.world.failureRate=0.2",
)
STAGING_SETS = ("mesh.outgoing.requestDtab.enabled=true", "mesh.incoming.requestDtab.enabled=true")

pytestmark = pytest.mark.slow


@dataclass
class Node:
    index: int
    outgoing: int
    incoming: int
    admin: int

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def ip(self) -> str:
        """The node's IP, which the mesh pod also has (a hostPort reaches it there)."""
        return f"127.0.{self.index}.1"

    def pod_ip(self, n: int) -> str:
        return f"127.0.{self.index}.{n}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.ip}:{self.admin}"


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values and args."""
    return re.sub(
        r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text
    )


FIELD_REFS = (
    "status.podIP",
    "spec.nodeName",
    "status.hostIP",
    "metadata.name",
    "metadata.namespace",
)


def container_env(
    container: dict[str, Any], fields: dict[str, str], resolve: dict[str, str]
) -> dict[str, str]:
    """The container's environment as the kubelet would set it, with the downward API's
    fields given, and ``resolve`` substituting cluster names/ports by loopback ones."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            value = expand(entry["value"], env)
        else:
            ref = entry["valueFrom"]["fieldRef"]["fieldPath"]
            assert ref in FIELD_REFS, ref
            value = fields[ref]
        env[entry["name"]] = resolve.get(value, value)
    return env


def container_argv(
    container: dict[str, Any], env: dict[str, str], resolve: dict[str, str]
) -> list[str]:
    argv = [expand(a, env) for a in container["command"] + container.get("args", [])]
    assert argv[0] == "l5d-twisted", argv
    return [sys.executable, "-m", "l5d_twisted", *(resolve.get(a, a) for a in argv[1:])]


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return bytes(response.read())


def prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    body = json.loads(http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    assert body["status"] == "success", body
    return list(body["data"]["result"])


class Traffic:
    """Steady requests through a node's outgoing router while Prometheus scrapes."""

    def __init__(self, proxy: str) -> None:
        self.proxy = proxy
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.answers = 0

    def run(self) -> None:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://{self.proxy}"})
        )
        while not self.stop.wait(0.1):
            try:
                with opener.open("http://hello/", timeout=5) as response:
                    response.read()
                    self.answers += 1
            except OSError:
                pass

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@dataclass
class Cluster:
    docs: list[dict[str, Any]]
    nodes: list[Node]
    processes: Processes
    tmp: Path

    def smoke_pod(self, name: str, node: Node, resolve: dict[str, str]) -> list[str]:
        pod = find(self.docs, "Pod", f"{FULLNAME}-smoke-{name}")
        (container,) = pod["spec"]["containers"]
        fields = {
            "status.hostIP": node.ip,
            "status.podIP": node.pod_ip(9),
            "spec.nodeName": node.name,
        }
        env = container_env(container, fields, {})
        resolve = {f"{node.ip}:{4140}": f"{node.ip}:{node.outgoing}", **resolve}
        return container_argv(container, env, resolve)

    def run(self, argv: list[str], timeout: float = 120) -> tuple[int, str]:
        proc = self.processes.start(*argv, name="smoke")
        try:
            proc.wait(timeout)
        finally:
            self.processes.stop(proc)
        return proc.returncode, self.processes.log(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One simulated two-node cluster shared by this module's tests (started once: ~6 s)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    processes = Processes(tmp_path)
    try:
        yield from start_cluster(processes, tmp_path, SETS)
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def staging_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The same cluster rendered with per-request staging on (part VI of the series)."""
    tmp_path = tmp_path_factory.mktemp("staging")
    processes = Processes(tmp_path)
    try:
        yield from start_cluster(processes, tmp_path, (*SETS[:2], *STAGING_SETS))
    finally:
        processes.stop_all()


def start_cluster(processes: Processes, tmp_path: Path, sets: tuple[str, ...]) -> Iterator[Cluster]:
    docs = render(sets=sets)
    ports = free_ports(10)
    nodes = [Node(1, *ports[0:3]), Node(2, *ports[3:6])]
    hello_port, world_port, api_port, world_v2_port = ports[6:10]
    node1, node2 = nodes
    hello_ip, world_ip, world_v2_ip = node1.pod_ip(2), node2.pod_ip(2), node1.pod_ip(3)

    # What the cluster's EndpointSlice controller would publish for the chart's Services, and
    # a world-v2 being deployed (a world pod on node1, where no world-v1 runs).
    objects = [
        endpoint_slice("hello-a", "hello", "http", hello_port, [(hello_ip, node1.name)]),
        endpoint_slice("world-v1-a", "world-v1", "http", world_port, [(world_ip, node2.name)]),
        endpoint_slice(
            "world-v2-a", "world-v2", "http", world_v2_port, [(world_v2_ip, node1.name)]
        ),
        *(
            endpoint_slice(
                f"{FULLNAME}-{n.name}", FULLNAME, "incoming", n.incoming, [(n.ip, n.name)]
            )
            for n in nodes
        ),
    ]
    (tmp_path / "objects.json").write_text(json.dumps(objects))
    processes.start(
        sys.executable,
        str(HERE / "chart_kmock_api.py"),
        "--port",
        str(api_port),
        "--objects",
        str(tmp_path / "objects.json"),
        name="api",
    )
    wait_for_port("127.0.0.1", api_port)

    # The mesh DaemonSet's pod on each node, with the ConfigMap's config: its init container
    # first (`l5d-twisted check` on the config as rendered), as the kubelet would.
    ds = find(docs, "DaemonSet", FULLNAME)
    (mesh,) = ds["spec"]["template"]["spec"]["containers"]
    (check_config,) = ds["spec"]["template"]["spec"]["initContainers"]
    (tmp_path / "linkerd.yaml").write_text(mesh_config_text(docs))
    checked = subprocess.run(
        container_argv(check_config, {}, {"/config/linkerd.yaml": str(tmp_path / "linkerd.yaml")}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (checked.returncode, checked.stdout.strip()) == (0, "ok"), checked.stderr
    rendered = yaml.safe_load(mesh_config_text(docs))
    for node in nodes:
        config = json.loads(json.dumps(rendered))
        config["namers"][0].update(host="127.0.0.1", port=api_port)
        # admin.ip stays as rendered (0.0.0.0): the DaemonSet's --admin-ip $(POD_IP) sets it.
        config["admin"].update(port=node.admin)
        for router, port in zip(config["routers"], (node.outgoing, node.incoming)):
            (server,) = router["servers"]
            server.update(ip=node.ip, port=port)
        path = tmp_path / f"linkerd-{node.name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        fields = {
            "status.podIP": node.ip,
            "spec.nodeName": node.name,
            "metadata.name": f"{FULLNAME}-{node.name}",
            "metadata.namespace": NAMESPACE,
        }
        env = container_env(mesh, fields, {})
        processes.start(
            *container_argv(mesh, env, {"/config/linkerd.yaml": str(path)}),
            env=env,
            name=f"mesh-{node.name}",
        )

    # The sample app's pods: hello on node1, world-v1 on node2, world-v2 (world-v1's pod spec) on node1.
    apps = (
        ("hello", node1, hello_ip, hello_port, "7777"),
        ("world-v1", node2, world_ip, world_port, "7778"),
        ("world-v1", node1, world_v2_ip, world_v2_port, "7778"),
    )
    for name, node, ip, port, rendered_port in apps:
        (app,) = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        fields = {"status.podIP": ip, "spec.nodeName": node.name, "status.hostIP": node.ip}
        # The node name resolves to the node's IP, whose hostPort 4140 is the outgoing router.
        resolve = {f"{node.name}:4140": f"{node.ip}:{node.outgoing}"}
        env = container_env(app, fields, resolve)
        argv = container_argv(app, env, {"0.0.0.0": ip, rendered_port: str(port)})
        processes.start(*argv, env=env, name=name)

    for node in nodes:
        # The admin first, then the routers' ports (with `workers`, worker processes listen
        # on those, after the admin is up).
        for port in (node.admin, node.outgoing, node.incoming):
            wait_for_port(node.ip, port, timeout=30)
    wait_for_port(hello_ip, hello_port)
    wait_for_port(world_ip, world_port)
    wait_for_port(world_v2_ip, world_v2_port)
    yield Cluster(docs, nodes, processes, tmp_path)


def via_proxy(node: Node, url: str, headers: dict[str, str]) -> str:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{node.ip}:{node.outgoing}"})
    )
    with opener.open(urllib.request.Request(url, headers=headers), timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


STAGE_V2 = {"l5d-dtab": "/host/world => /srv/world-v2"}


def answers(node: Node, url: str, headers: dict[str, str], n: int) -> list[str]:
    """The 200 answers of n requests (this cluster's world fails 20 % of its answers)."""
    found = []
    for _ in range(n):
        try:
            found.append(via_proxy(node, url, headers))
        except urllib.error.HTTPError as e:
            assert e.code >= 500, e.code
    return found


def test_a_clients_dtab_is_not_honoured_by_default(cluster: Cluster) -> None:
    # mesh.outgoing.requestDtab.enabled is false: the header changes nothing (before the
    # chart set it, world-v2 answered).
    node1, _ = cluster.nodes
    got = answers(node1, "http://hello/", STAGE_V2, 20)
    assert got
    for answer in got:
        assert re.fullmatch(
            r"Hello \(127\.0\.1\.2[^)]*\) world \(127\.0\.2\.2[^)]*\)!\s*", answer
        ), answer


def test_staging_reaches_the_staged_version_through_both_routers(staging_cluster: Cluster) -> None:
    # With both routers honouring request dtabs, the override crosses every hop: node1's
    # outgoing router forwards it to hello (incoming router, l5d-ctx-dtab), hello passes it
    # on, node1's outgoing router sends world to world-v2's node, whose incoming router binds
    # the name again with the forwarded dtab: world-v2 answers.  Without it, world-v1.
    node1, _ = staging_cluster.nodes
    staged = via_proxy(node1, "http://hello/", STAGE_V2)
    assert re.fullmatch(r"Hello \(127\.0\.1\.2[^)]*\) world \(127\.0\.1\.3[^)]*\)!\s*", staged), (
        staged
    )
    plain = via_proxy(node1, "http://hello/", {})
    assert re.fullmatch(r"Hello \(127\.0\.1\.2[^)]*\) world \(127\.0\.2\.2[^)]*\)!\s*", plain), (
        plain
    )


def test_rendered_chart_runs_and_helm_tests_pass(cluster: Cluster) -> None:
    node1, node2 = cluster.nodes

    # helm test: the mesh pod's smoke command, from either node.
    for node in (node1, node2):
        argv = cluster.smoke_pod(
            "mesh", node, {f"http://{FULLNAME}.{NAMESPACE}.svc:9990": node.admin_url}
        )
        rc, out = cluster.run(argv)
        assert rc == 0, out
        assert f"PASS admin: {node.admin_url}/admin/ping answered pong" in out
        # hello on node1 answered with world on node2: the request crossed nodes both ways.
        assert re.search(
            r"PASS proxy: http://hello/ via proxy 127\.0\.\d\.1:\d+ answered "
            r"'Hello \(127\.0\.1\.2[^)]*\) world \(127\.0\.2\.2[^)]*\)!'",
            out,
        ), out

    # The incoming router of node2 delivered world's requests (daemonset transformer), and
    # node1's incoming delivered hello's (localnode transformer).
    def served(node: Node, router: str) -> float:
        metrics = json.loads(http_get(f"{node.admin_url}/admin/metrics.json"))
        return sum(
            v
            for k, v in metrics.items()
            if k.startswith(f"rt/{router}/server/") and k.endswith("/requests")
        )

    assert served(node1, "incoming") >= 2 and served(node2, "incoming") >= 2


def test_admin_is_on_the_pod_ip_only_and_the_probes_answer(cluster: Cluster) -> None:
    mesh = find(cluster.docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in mesh["ports"]}
    for node in cluster.nodes:
        # --admin-ip $(POD_IP): not on loopback, where a request the proxy is made to send to
        # 127.0.0.1 would find it.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", node.admin), timeout=5).close()
        # The kubelet's httpGet probes, as it sends them: to the pod's IP at the named port.
        for kind in ("readinessProbe", "livenessProbe"):
            probe = mesh[kind]["httpGet"]
            assert ports[probe["port"]] == 9990
            with urllib.request.urlopen(
                f"http://{node.ip}:{node.admin}{probe['path']}", timeout=5
            ) as response:  # noqa: S310 - loopback only
                assert response.status == 200, (kind, probe)


def start_prometheus(cluster: Cluster) -> str:
    """The chart's Prometheus (rendered config and rules) scraping the cluster's mesh pods, by
    file_sd targets carrying the labels Kubernetes discovery would; returns its base URL."""
    node1, node2 = cluster.nodes
    tmp = cluster.tmp / "prometheus"
    tmp.mkdir()
    targets = tmp / "targets.json"
    config, _ = localise(prometheus_files(cluster.docs), tmp, targets)
    meta = {
        "__meta_kubernetes_service_label_app_kubernetes_io_name": "l5d-twisted",
        "__meta_kubernetes_service_label_app_kubernetes_io_instance": RELEASE,
        "__meta_kubernetes_namespace": NAMESPACE,
    }
    groups = [
        {
            "targets": [f"{n.ip}:{n.admin}"],
            "labels": {
                **meta,
                "__meta_kubernetes_endpoint_port_name": "admin",
                "__meta_kubernetes_pod_name": f"{FULLNAME}-{n.name}",
                "__meta_kubernetes_pod_node_name": n.name,
            },
        }
        for n in (node1, node2)
    ]
    # Endpoints the relabelling must drop: the mesh's other ports, another release's mesh.
    groups.append(
        {
            "targets": [f"{node1.ip}:{node1.incoming}"],
            "labels": {**meta, "__meta_kubernetes_endpoint_port_name": "incoming"},
        }
    )
    groups.append(
        {
            "targets": [f"{node2.ip}:{node2.admin}"],
            "labels": {
                **meta,
                "__meta_kubernetes_service_label_app_kubernetes_io_instance": "other",
                "__meta_kubernetes_endpoint_port_name": "admin",
            },
        }
    )
    targets.write_text(json.dumps(groups))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cluster.processes.start(
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        name="prometheus",
    )
    wait_for_port("127.0.0.1", port, timeout=30)
    return base


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian prometheus missing")
def test_prometheus_scrapes_the_mesh_and_dashboards_have_data(cluster: Cluster) -> None:
    node1, node2 = cluster.nodes
    base = start_prometheus(cluster)

    with Traffic(f"{node1.ip}:{node1.outgoing}") as traffic:
        argv = cluster.smoke_pod(
            "prometheus", node1, {f"http://{RELEASE}-prometheus.{NAMESPACE}.svc:9090": base}
        )
        rc, out = cluster.run(argv)
        assert rc == 0, out
        assert "PASS prometheus: 2 mesh targets up" in out

        active = json.loads(http_get(f"{base}/api/v1/targets"))["data"]["activeTargets"]
        assert sorted(t["labels"]["instance"] for t in active) == [
            f"{FULLNAME}-node1",
            f"{FULLNAME}-node2",
        ]
        assert {t["labels"]["node"] for t in active} == {"node1", "node2"}

        # linkerd-viz relabelling on the mesh's real exposition: last path segment only.
        wait_until(
            lambda: prom_query(base, 'rt:service:requests{rt="outgoing",service="hello"}'),
            20,
            what="service label hello",
        )
        clients = {
            r["metric"]["client"] for r in prom_query(base, 'rt:client:requests{rt="outgoing"}')
        }
        assert "hello" in clients and "world-v1" in clients, clients

        # Every recording rule evaluates to data; the 4XX half of the status rule aside,
        # which needs 4XX answers.
        rules = yaml.safe_load(prometheus_files(cluster.docs)["rules.yml"])
        records = [r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r]
        assert len(records) > 15
        for record in records:
            wait_until(lambda r=record: prom_query(base, r), 20, what=f"recording rule {record}")
        statuses = {
            r["metric"]["status"] for r in prom_query(base, "rt_status:client_responses:rate1m")
        }
        assert "5XX" in statuses

        def world_error_ratio() -> float:
            result = prom_query(
                base, 'rt_service:error_ratio:rate5m{rt="outgoing",service="world"}'
            )
            return float(result[0]["value"][1]) if result else 0.0

        # world fails 20 % of its answers: the SLO's error ratio sees it.
        wait_until(lambda: 0 < world_error_ratio() < 0.6, 20, what="world's error ratio")

        # ... and pages: 20 % errors burn a 99.9 % SLO's budget 200 times too fast.
        def firing() -> set[tuple[str, str]]:
            alerts = json.loads(http_get(f"{base}/api/v1/alerts"))["data"]["alerts"]
            return {
                (a["labels"]["alertname"], a["labels"].get("service", ""))
                for a in alerts
                if a["state"] == "firing"
            }

        wait_until(
            lambda: ("L5dServiceErrorBudgetBurnFast", "world") in firing(),
            20,
            what="the fast-burn alert for world",
        )

        # Every dashboard query returns data: the 4XX panel too, although nothing answered
        # a 4XX here (the mesh has no 4XX counter): it shows 0, not "No data".
        no_data = []
        for path in sorted((REPO / "chart" / "dashboards").glob("*.json")):
            dashboard = json.loads(path.read_text())
            for panel in [p for p in dashboard["panels"] if p["type"] != "row"]:
                for t in panel["targets"]:
                    expr = (
                        t["expr"]
                        .replace('=~"$service"', '=~"hello|world"')
                        .replace('=~"$instance"', '=~".*"')
                    )
                    expr = expr.replace("$router", "outgoing").replace("$service", "hello")
                    result = prom_query(base, expr)
                    if not result:
                        no_data.append(f"{path.name}: {panel['title']}: {expr}")
                    if panel["title"] == "4XX rate":
                        assert not prom_query(base, 'rt:client:status:4XX{rt="outgoing"}')
                        assert [(r["metric"], r["value"][1]) for r in result] == [({}, "0")]
                    if panel["title"] == "5XX rate":
                        assert [r["metric"] for r in result] == [{}]
                        assert float(result[0]["value"][1]) > 0
        assert no_data == [], "\n".join(no_data)
        assert traffic.answers > 0


def dashboard_expr(title: str) -> str:
    (path,) = [p for p in (REPO / "chart" / "dashboards").glob("*top-line.json")]
    dashboard = json.loads(path.read_text())
    (expr,) = [t["expr"] for p in dashboard["panels"] if p["title"] == title for t in p["targets"]]
    return str(expr).replace("$router", "outgoing")


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian prometheus missing")
def test_error_panels_show_zero_on_a_healthy_mesh(staging_cluster: Cluster) -> None:
    # The staging cluster's world never fails: a healthy mesh, scraped by the chart's
    # Prometheus.  It exposes no 4XX or 5XX counter at all, which left the panels on "No
    # data"; they show 0.
    node1, _ = staging_cluster.nodes
    base = start_prometheus(staging_cluster)
    assert via_proxy(node1, "http://hello/", {}).startswith("Hello")
    wait_until(
        lambda: prom_query(base, 'rt:client:status:2XX{rt="outgoing"}'),
        20,
        what="2XX answers scraped",
    )
    for status in ("4XX", "5XX"):
        assert prom_query(base, f'rt:client:status:{status}{{rt="outgoing"}}') == []
        result = prom_query(base, dashboard_expr(f"{status} rate"))
        assert [(r["metric"], r["value"][1]) for r in result] == [({}, "0")], status


def test_grafana_test_pod_passes_with_rendered_dashboards(cluster: Cluster) -> None:
    folder = cluster.tmp / "provisioned"
    folder.mkdir()
    for name, text in find(cluster.docs, "ConfigMap", f"{RELEASE}-l5d-twisted-dashboards")[
        "data"
    ].items():
        (folder / name).write_text(text)
    port = free_port()
    cluster.processes.start(
        sys.executable,
        str(HERE / "chart_grafana_standin.py"),
        "--port",
        str(port),
        "--dashboards",
        str(folder),
        name="grafana",
    )
    wait_for_port("127.0.0.1", port)
    argv = cluster.smoke_pod(
        "grafana",
        cluster.nodes[0],
        {f"http://{RELEASE}-grafana.{NAMESPACE}.svc:3000": f"http://127.0.0.1:{port}"},
    )
    rc, out = cluster.run(argv)
    assert rc == 0, out
