"""The container image, built by scripts/build-image.sh, runs the rendered chart's pods
under `podman kube play`, against the emulated Kubernetes API (kmock).

One simulated node on a loopback /24 (127.A.B.0, chosen per run): the mesh DaemonSet's pod
template as a Pod on 127.A.B.1 (node IP = mesh pod IP, as with the chart's hostPort), the
hello and world-v1 Deployments on .2 and .3, and the `helm test` pods.  The emulated API
(a host process on 127.0.0.1) holds the EndpointSlices the cluster would publish; the mesh
reaches it through the chart's own `mesh.k8sNamer.host/port` values (its kubectl-proxy
setting).  Prometheus (Debian's, with the rendered config and rules, file_sd instead of
Kubernetes SD) and a Grafana stand-in serving the rendered dashboards run as host processes
for their smoke pods.

What podman 4.3 needs changed in the rendered specs, done in `image_podman.for_podman`,
`image_podman.annotations_for_podman`, `mesh_config_for_podman` and the replicas of the
sample Deployments, and nowhere else (test_spec_changes_are_only_the_listed_ones checks the
list):

1. `hostNetwork: true` on every pod: the host's network namespace, each pod listening on
   its own loopback address; no bridge network, nothing reaches outside.
2. `/etc/hosts` of each container mounted from a file of the test (hostPath volume): the
   cluster DNS for Service names (`mesh-l5d-twisted.mesh-ns.svc`, ...) and the node name
   (`node1`, which hello's `http_proxy=$(NODE_NAME):4140` names); podman 4.3 ignores
   `hostAliases` on the host network.
3. Downward-API env (`status.podIP`, `status.hostIP`, `spec.nodeName`, `metadata.name`,
   `metadata.namespace`) given as plain values: podman 4.3 lacks most fieldRefs.
4. `$(VAR)` in env values, command and args expanded by the test as the kubelet would
   (podman 4.3 passes them literally): the mesh's `--admin-ip $(POD_IP)`, the smoke pods'
   `$(HOST_IP):4140`, hello's `$(NODE_NAME):4140`.
5. `0.0.0.0` in the apps' `--ip` args -> the pod's loopback address, and in the mesh
   ConfigMap the routers' `servers[].ip` 0.0.0.0 -> the pod IP: on the host network
   0.0.0.0 would listen on the machine's real interfaces.
6. Probes removed from the specs: podman turns httpGet/tcpSocket probes into curl/nc runs
   inside the container, and the image has neither.  test_rendered_probes_pass performs
   the rendered probes (path and named port) from outside instead.
7. The containers' `ports` lists dropped: podman 4.3 publishes every containerPort as a
   port mapping, refused on the host network, where the ports the processes listen on
   are the node's ports anyway (the mesh's hostPort 4140 included).
8. The mesh pod's `checksum/config` annotation dropped: podman 4.3 holds annotation values
   to the 63-character limit of label values (a sha256 has 64).
9. Init containers (the mesh's `check-config`) run by the test with `podman run`, on the
   same image and the ConfigMap's config, before the pod is played: podman 4.3's `kube
   play` fails to remove a finished init container ("cannot remove container ... as it is
   running") and never starts the pod.  test_check_config_init_container_passes checks
   what it printed.
10. The hello and world Deployments played with 1 replica (the chart's default is 3, as
    in the article): on one host network every replica would bind the same address.

podman runs with `runc`, cgroupfs, file events and explicit ulimits (a private
containers.conf; see image_podman.CONTAINERS_CONF).  Needs root (skipped otherwise) and
the tools of scripts/setup.sh.  The image is built once per module (the .deb and wheel
caches under build/image make later builds of the same CI run faster).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from image_podman import (
    ARCHIVE,
    IMAGE,
    REPO,
    Build,
    Podman,
    annotations_for_podman,
    build_image,
    existing_build,
    for_podman,
    pod_from_template,
    run_init_containers,
)
from l5d_testing import Processes, free_port, port_open, wait_for_port, wait_until

sys.path.insert(0, str(REPO / "tests" / "chart"))
from chart_testlib import (  # noqa: E402
    NAMESPACE,
    RELEASE,
    endpoint_slice,
    find,
    localise,
    prometheus_files,
    render,
)

FULLNAME = f"{RELEASE}-l5d-twisted"
NODE = "node1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.geteuid() != 0, reason="building and running the image needs root"),
]


def http_get(url: str, timeout: float = 5.0, proxy: str | None = None) -> tuple[int, bytes]:
    handlers = [urllib.request.ProxyHandler({"http": f"http://{proxy}"} if proxy else {})]
    with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return int(response.status), bytes(response.read())


def mesh_config_for_podman(
    configmap: dict[str, Any], pod_ip: str
) -> tuple[dict[str, Any], list[str]]:
    """The mesh ConfigMap with the routers listening on the pod IP instead of 0.0.0.0."""
    configmap = json.loads(json.dumps(configmap))
    config = yaml.safe_load(configmap["data"]["linkerd.yaml"])
    changes = []
    for router in config["routers"]:
        for server in router["servers"]:
            if server.get("ip", "0.0.0.0") == "0.0.0.0":
                server["ip"] = pod_ip
                changes.append(f"ConfigMap: router {router['label']} server ip 0.0.0.0 -> pod IP")
    configmap["data"]["linkerd.yaml"] = yaml.safe_dump(config, sort_keys=False)
    return configmap, changes


@dataclass
class Cluster:
    docs: list[dict[str, Any]]
    podman: Podman
    processes: Processes
    tmp: Path
    subnet: str
    hosts_file: Path
    changes: dict[str, list[str]] = field(default_factory=dict)
    init_outputs: list[str] = field(default_factory=list)

    def ip(self, n: int) -> str:
        return f"{self.subnet}.{n}"

    @property
    def node_ip(self) -> str:
        return self.ip(1)

    def fields(self, pod_name: str, pod_ip: str) -> dict[str, str]:
        return {
            "status.podIP": pod_ip,
            "status.hostIP": self.node_ip,
            "spec.nodeName": NODE,
            "metadata.name": pod_name,
            "metadata.namespace": NAMESPACE,
        }

    def container(self, pod_prefix: str, name: str) -> str:
        names = self.podman.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
        found = [n for n in names if n.startswith(pod_prefix) and n.endswith(f"-{name}")]
        assert len(found) == 1, (pod_prefix, name, names)
        return found[0]

    def run_smoke_pod(self, which: str, timeout: float = 150) -> tuple[int, str]:
        """Play a `helm test` pod as rendered (plus the listed changes); its exit code and log."""
        pod = find(self.docs, "Pod", f"{FULLNAME}-smoke-{which}")
        spec, changes = for_podman(
            pod["spec"],
            self.fields(pod["metadata"]["name"], self.ip(9)),
            self.ip(9),
            self.hosts_file,
        )
        self.changes[f"smoke-{which}"] = changes
        self.podman.play(f"smoke-{which}", [{**pod, "spec": spec}])
        container = self.container(pod["metadata"]["name"], "smoke")
        self.podman.run("wait", container, timeout=timeout)
        code = int(self.podman.inspect(container)["State"]["ExitCode"])
        return code, self.podman.logs(container)


@pytest.fixture(scope="module")
def build() -> Build:
    """The image, built once for the module.  L5D_IMAGE_REUSE=1 takes the one already in
    dist/ and podman's storage instead (for iterating on these tests; CI always builds)."""
    if os.environ.get("L5D_IMAGE_REUSE") == "1" and ARCHIVE.exists():
        return existing_build()
    return build_image()


@pytest.fixture(scope="module")
def cluster(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("podman")
    processes = Processes(tmp)
    podman = Podman(tmp)
    try:
        yield start_cluster(tmp, processes, podman)
    finally:
        podman.down_all()
        processes.stop_all()


def free_subnet() -> str:
    """A loopback /24 with nothing listening on the chart's ports."""
    rng = random.Random()
    for _ in range(50):
        subnet = f"127.{rng.randrange(64, 250)}.{rng.randrange(1, 250)}"
        if not any(
            port_open(f"{subnet}.{n}", p)
            for n in (1, 2, 3, 7, 8)
            for p in (4140, 4141, 9990, 7777, 7778, 9090, 3000)
        ):
            return subnet
    raise AssertionError("no free loopback subnet")


def start_cluster(tmp: Path, processes: Processes, podman: Podman) -> Cluster:
    api_port = free_port()
    # The chart's kubectl-proxy setting of the io.l5d.k8s namer points it at the emulated API.
    sets = (
        "mesh.k8sNamer.host=127.0.0.1",
        f"mesh.k8sNamer.port={api_port}",
        "prometheus.scrapeInterval=1s",
        "prometheus.evaluationInterval=1s",
    )
    docs = render(sets=sets)
    subnet = free_subnet()
    hosts_file = tmp / "hosts"
    cluster = Cluster(docs, podman, processes, tmp, subnet, hosts_file)
    node_ip = cluster.node_ip
    hosts_file.write_text(
        "127.0.0.1 localhost\n"
        f"{node_ip} {NODE} {FULLNAME}.{NAMESPACE}.svc {FULLNAME}.{NAMESPACE}.svc.cluster.local\n"
        f"{cluster.ip(7)} {RELEASE}-prometheus.{NAMESPACE}.svc\n"
        f"{cluster.ip(8)} {RELEASE}-grafana.{NAMESPACE}.svc\n"
    )
    hosts_file.chmod(0o644)

    # What the EndpointSlice controller would publish for the chart's Services.
    objects = [
        endpoint_slice("hello-a", "hello", "http", 7777, [(cluster.ip(2), NODE)]),
        endpoint_slice("world-v1-a", "world-v1", "http", 7778, [(cluster.ip(3), NODE)]),
        endpoint_slice(f"{FULLNAME}-a", FULLNAME, "incoming", 4141, [(node_ip, NODE)]),
    ]
    (tmp / "objects.json").write_text(json.dumps(objects))
    processes.start(
        sys.executable,
        str(REPO / "tests" / "chart" / "chart_kmock_api.py"),
        "--port",
        str(api_port),
        "--objects",
        str(tmp / "objects.json"),
        name="api",
    )
    wait_for_port("127.0.0.1", api_port)

    # The DaemonSet's pod on the node, with its ConfigMap.
    ds = find(docs, "DaemonSet", FULLNAME)
    mesh_pod = pod_from_template(ds, f"{FULLNAME}-{NODE}")
    mesh_pod["spec"], cluster.changes["mesh"] = for_podman(
        mesh_pod["spec"], cluster.fields(mesh_pod["metadata"]["name"], node_ip), node_ip, hosts_file
    )
    configmap, config_changes = mesh_config_for_podman(
        find(docs, "ConfigMap", f"{FULLNAME}-config"), node_ip
    )
    cluster.changes["mesh"] += config_changes + annotations_for_podman(mesh_pod["metadata"])
    # The check-config init container, on the image and the ConfigMap the pod gets.
    cluster.init_outputs = run_init_containers(
        podman,
        ds["spec"]["template"]["spec"],
        {"/config/linkerd.yaml": configmap["data"]["linkerd.yaml"]},
        tmp,
    )
    podman.play("mesh", [configmap, mesh_pod])

    # The sample app's Deployments.
    for name, n in (("world-v1", 3), ("hello", 2)):
        deployment = json.loads(json.dumps(find(docs, "Deployment", name)))
        spec = deployment["spec"]["template"]["spec"]
        deployment["spec"]["template"]["spec"], cluster.changes[name] = for_podman(
            spec, cluster.fields(f"{name}-pod", cluster.ip(n)), cluster.ip(n), hosts_file
        )
        # 10. One replica: every replica would be a pod on the same loopback address and
        #     port (the chart runs 3, as the article), and podman has no scheduler.
        if deployment["spec"].get("replicas", 1) != 1:
            cluster.changes[name].append(f"replicas {deployment['spec']['replicas']} -> 1")
            deployment["spec"]["replicas"] = 1
        podman.play(name, [deployment])

    def ready() -> bool:
        try:
            return http_get(f"http://{node_ip}:9990/ready", timeout=2)[0] == 200
        except OSError:
            return False

    wait_until(ready, 90, interval=0.5, what="the mesh pod's readiness (GET /ready)")
    wait_for_port(cluster.ip(2), 7777, timeout=60)
    wait_for_port(cluster.ip(3), 7778, timeout=60)
    return cluster


def proc_status(podman: Podman, container: str) -> dict[str, str]:
    pid = podman.inspect(container)["State"]["Pid"]
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_image_is_lean_and_non_root(build: Build, cluster: Cluster) -> None:
    config = json.loads(
        subprocess.run(
            ["skopeo", "inspect", "--config", f"oci-archive:{ARCHIVE}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["l5d-twisted"]
    assert ARCHIVE.stat().st_size == build.archive_bytes
    # The docker-save form names the image as the chart does by default.
    docker_archive = ARCHIVE.with_name(ARCHIVE.name.replace(".oci.tar", ".docker.tar"))
    (manifest,) = json.loads(
        subprocess.run(
            ["tar", "-xOf", str(docker_archive), "manifest.json"], capture_output=True, check=True
        ).stdout
    )
    assert manifest["RepoTags"] == [IMAGE]
    # The chart's pods name, by default, the image the build makes.
    specs = [find(cluster.docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]]
    specs += [
        find(cluster.docs, "Deployment", n)["spec"]["template"]["spec"]
        for n in ("hello", "world-v1")
    ]
    specs += [
        find(cluster.docs, "Pod", f"{FULLNAME}-smoke-{n}")["spec"]
        for n in ("mesh", "prometheus", "grafana")
    ]
    assert {c["image"] for spec in specs for c in spec["containers"]} == {IMAGE}
    # The chart's runAsUser/runAsGroup are the image's user (runAsNonRoot can check it).
    pod_security = find(cluster.docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"][
        "securityContext"
    ]
    assert f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}" == config["User"]
    # No package manager, build tool or unused client library in the venv.
    check = (
        "import importlib.util as u; "
        "print([m for m in ('pip', 'setuptools', 'wheel', 'kubernetes', 'h2') if u.find_spec(m)])"
    )
    # ... while the TLS stack (pyOpenSSL, cryptography, service_identity, the CA bundle) loads.
    check += (
        "\nfrom twisted.internet import ssl; "
        "ssl.optionsForClientTLS('mesh.example', trustRoot=ssl.platformTrust()); print('tls')"
    )
    out = cluster.podman.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/opt/l5d/bin/python",
        IMAGE,
        "-c",
        check,
    ).stdout
    assert out.split() == ["[]", "tls"], out


def test_pods_run_as_the_chart_security_context_says(cluster: Cluster) -> None:
    containers = {
        "mesh": cluster.container(f"{FULLNAME}-{NODE}", "l5d"),
        "hello": cluster.container("hello", "hello"),
        "world-v1": cluster.container("world-v1", "world"),
    }
    for what, container in containers.items():
        info = cluster.podman.inspect(container)
        assert info["State"]["Running"], what
        assert info["HostConfig"]["ReadonlyRootfs"] is True, what
        status = proc_status(cluster.podman, container)
        assert status["Uid"].split() == ["10001"] * 4, (what, status["Uid"])
        assert status["Gid"].split() == ["10001"] * 4, (what, status["Gid"])
        for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[caps], 16) == 0, (what, caps, status[caps])
        assert status["NoNewPrivs"] == "1", what  # allowPrivilegeEscalation: false
        assert status["Seccomp"] == "2", what  # seccompProfile RuntimeDefault: filtering
        # The root filesystem refuses writes even to root; /tmp (the emptyDir) takes them.
        probe = (
            "import sys\n"
            "try:\n    open(sys.argv[1], 'w').close(); print('written')\n"
            "except OSError as e:\n    print(e.strerror)"
        )
        as_root = cluster.podman.run(
            "exec", "--user", "0", container, "python3", "-c", probe, "/probe"
        ).stdout.strip()
        assert as_root == "Read-only file system", (what, as_root)
        in_tmp = cluster.podman.run(
            "exec", container, "python3", "-c", probe, "/tmp/probe"
        ).stdout.strip()
        assert in_tmp == "written", (what, in_tmp)


def test_rendered_probes_pass(cluster: Cluster) -> None:
    """The probes of the rendered specs, performed as the kubelet would against the pods."""
    (mesh,) = find(cluster.docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in mesh["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = mesh[probe]["httpGet"]
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        status, _ = http_get(
            f"http://{cluster.node_ip}:{port}{get['path']}",
            timeout=mesh[probe].get("timeoutSeconds", 1),
        )
        assert 200 <= status < 400, (probe, status)
    for name, n in (("hello", 2), ("world-v1", 3)):
        (app,) = find(cluster.docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in app["ports"]}
        port = ports[app["readinessProbe"]["tcpSocket"]["port"]]
        assert port_open(cluster.ip(n), port), name


def test_hello_answers_through_the_mesh(cluster: Cluster) -> None:
    answers: list[bytes] = []

    def answered() -> bool:
        try:
            status, body = http_get("http://hello/", timeout=10, proxy=f"{cluster.node_ip}:4140")
        except OSError:
            return False
        answers.append(body)
        return status == 200

    # Ready means serving; discovery of hello and world may take a moment longer.
    wait_until(answered, 30, interval=0.5, what="an answer of hello through the mesh")
    body = answers[-1]
    assert re.fullmatch(
        rf"Hello \({re.escape(cluster.ip(2))}[^)]*\) world \({re.escape(cluster.ip(3))}[^)]*\)!\s*",
        body.decode(),
    ), body


def test_helm_test_pod_mesh_passes(cluster: Cluster) -> None:
    code, out = cluster.run_smoke_pod("mesh")
    assert code == 0, out
    assert f"PASS admin: http://{FULLNAME}.{NAMESPACE}.svc:9990/admin/ping answered pong" in out, (
        out
    )
    assert re.search(
        r"PASS proxy: http://hello/ via proxy [\d.]+:4140 answered 'Hello \([^)]*\) world \([^)]*\)!'",
        out,
    ), out


class Traffic:
    """Requests through the mesh while Prometheus scrapes (its smoke check wants a rate)."""

    def __init__(self, proxy: str) -> None:
        self.proxy = proxy
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                http_get("http://hello/", proxy=self.proxy)
            except OSError:
                pass

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian prometheus missing")
def test_helm_test_pod_prometheus_passes(cluster: Cluster) -> None:
    folder = cluster.tmp / "prometheus"
    folder.mkdir()
    targets = folder / "targets.json"
    config, _ = localise(prometheus_files(cluster.docs), folder, targets)
    meta = {
        "__meta_kubernetes_service_label_app_kubernetes_io_name": "l5d-twisted",
        "__meta_kubernetes_service_label_app_kubernetes_io_instance": RELEASE,
        "__meta_kubernetes_namespace": NAMESPACE,
        "__meta_kubernetes_endpoint_port_name": "admin",
        "__meta_kubernetes_pod_name": f"{FULLNAME}-{NODE}",
        "__meta_kubernetes_pod_node_name": NODE,
    }
    targets.write_text(json.dumps([{"targets": [f"{cluster.node_ip}:9990"], "labels": meta}]))
    address = cluster.ip(7)
    cluster.processes.start(
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address={address}:9090",
        name="prometheus",
    )
    wait_for_port(address, 9090, timeout=30)
    with Traffic(f"{cluster.node_ip}:4140"):
        code, out = cluster.run_smoke_pod("prometheus")
    assert code == 0, out
    assert "PASS prometheus: 1 mesh target up" in out, out


def test_helm_test_pod_grafana_passes(cluster: Cluster) -> None:
    folder = cluster.tmp / "dashboards"
    folder.mkdir()
    for name, text in find(cluster.docs, "ConfigMap", f"{FULLNAME}-dashboards")["data"].items():
        (folder / name).write_text(text)
    address = cluster.ip(8)
    cluster.processes.start(
        sys.executable,
        str(REPO / "tests" / "chart" / "chart_grafana_standin.py"),
        "--host",
        address,
        "--port",
        "3000",
        "--dashboards",
        str(folder),
        name="grafana",
    )
    wait_for_port(address, 3000)
    code, out = cluster.run_smoke_pod("grafana")
    assert code == 0, out
    assert "PASS grafana" in out, out


def test_check_config_init_container_passes(cluster: Cluster) -> None:
    """The DaemonSet's check-config init container ran on the image and the rendered config
    and found it valid (the pod would not start otherwise)."""
    (output,) = cluster.init_outputs
    assert output.strip().splitlines()[-1].startswith("ok"), output


def test_spec_changes_are_only_the_listed_ones(cluster: Cluster) -> None:
    """Every change made for podman is one of those the module docstring lists."""
    allowed = [
        r"hostNetwork: true",
        r"/etc/hosts mounted from the test's cluster-DNS file",
        (
            r"\w+: env \w+ = "
            r"(status\.podIP|status\.hostIP|spec\.nodeName|metadata\.name|metadata\.namespace)"
            r" given as a value"
        ),
        r"\w+: env \w+ \$\(\.\.\.\) expanded",
        r"\w+: (command|args) \$\(\.\.\.\) expanded / 0\.0\.0\.0 -> pod IP",
        r"\w+: (readinessProbe|livenessProbe) performed by the test",
        r"ConfigMap: router \w+ server ip 0\.0\.0\.0 -> pod IP",
        r"annotation checksum/config dropped",
        r"\w+: ports list dropped",
        r"[\w-]+: init container run by the test before the pod",
        r"replicas \d+ -> 1",
    ]
    assert {"mesh", "hello", "world-v1", "smoke-mesh"} <= set(cluster.changes)
    for pod, changes in cluster.changes.items():
        for change in changes:
            assert any(re.fullmatch(a, change) for a in allowed), (pod, change)
    # The mesh's own changes, exactly.
    assert sorted(set(cluster.changes["mesh"])) == sorted(
        {
            "hostNetwork: true",
            "/etc/hosts mounted from the test's cluster-DNS file",
            "l5d: env POD_IP = status.podIP given as a value",
            "l5d: env NODE_NAME = spec.nodeName given as a value",
            "l5d: env POD_NAME = metadata.name given as a value",
            "l5d: env POD_NAMESPACE = metadata.namespace given as a value",
            "l5d: args $(...) expanded / 0.0.0.0 -> pod IP",
            "l5d: readinessProbe performed by the test",
            "l5d: livenessProbe performed by the test",
            "ConfigMap: router outgoing server ip 0.0.0.0 -> pod IP",
            "ConfigMap: router incoming server ip 0.0.0.0 -> pod IP",
            "annotation checksum/config dropped",
            "l5d: ports list dropped",
            "check-config: init container run by the test before the pod",
        }
    )


def test_mesh_stops_cleanly_on_podman_stop(cluster: Cluster) -> None:
    """SIGTERM: the mesh drains and exits 0 within the pod's grace period (not killed)."""
    container = cluster.container(f"{FULLNAME}-{NODE}", "l5d")
    grace = int(
        find(cluster.docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"
        ]
    )
    started = time.monotonic()
    cluster.podman.run("stop", "--time", str(grace), container, timeout=grace + 60)
    elapsed = time.monotonic() - started
    info = cluster.podman.inspect(container)
    assert info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 0, cluster.podman.logs(container)[-3000:]
    assert elapsed < grace, elapsed
    assert not port_open(cluster.node_ip, 4140)


def test_build_is_reproducible(build: Build) -> None:
    """A second build of the same tree gives the same manifest digest (last: it rebuilds)."""
    again = build_image()
    assert again.digest == build.digest, (build.output[-1500:], again.output[-1500:])
