"""Two "nodes" on loopback networks, the reference DaemonSet topology, real processes.

node1 = 127.0.1.0/24: mesh pod 127.0.1.1 (outgoing + incoming routers), app hello
node2 = 127.0.2.0/24: mesh pod 127.0.2.1, app world-v1

The Kubernetes API is kmock's emulator (standing where linkerd 1's ``kubectl proxy`` was):
EndpointSlices list hello on node1, world-v1 on node2 and the mesh DaemonSet's service
``l5d`` with one pod per node (port ``incoming``), all with node names.  Each mesh runs
the routers, dtab and transformers of ``examples/configs/daemonset.yaml`` unchanged; only
addresses and ports are set for loopback.

``curl -x node1:outgoing http://hello`` must answer ``Hello (<hello ip>) world (<world
ip>)!``, and the call to world must have gone outgoing(node1) -> incoming(node2), which
the routers' own metrics show.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from l5d_testing import REPO, free_port, wait_for_port, wait_until

HERE = Path(__file__).resolve().parent
REFERENCE_CONFIG = REPO / "examples" / "configs" / "daemonset.yaml"

NODES = {
    "node1": {"mesh": "127.0.1.1", "app": "127.0.1.10"},
    "node2": {"mesh": "127.0.2.1", "app": "127.0.2.10"},
}

pytestmark = pytest.mark.slow


def port_free_on_all(*hosts: str) -> int:
    """A port number free on every given address (a DaemonSet's pods share port numbers)."""
    for _ in range(50):
        candidate = free_port(hosts[0])
        ok = True
        for host in hosts[1:]:
            with socket.socket() as s:
                try:
                    s.bind((host, candidate))
                except OSError:
                    ok = False
        if ok:
            return candidate
    raise RuntimeError("no common free port")


def slice_for(
    service: str, port_name: str, port: int, pods: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """An EndpointSlice of ``service``; pods are (ip, node name, pod name)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-x1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": True},
                "nodeName": node,
                "targetRef": {"kind": "Pod", "name": pod},
            }
            for ip, node, pod in pods
        ],
    }


def node_config(
    node: str, api_port: int, outgoing: int, incoming: int, admin: int
) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(REFERENCE_CONFIG.read_text())
    ip = NODES[node]["mesh"]
    config["admin"] = {"ip": ip, "port": admin}
    (namer,) = config["namers"]
    assert namer["kind"] == "io.l5d.k8s"
    namer["host"], namer["port"] = "127.0.0.1", api_port  # the emulated API, like a kubectl proxy
    ports = {"outgoing": outgoing, "incoming": incoming}
    for router in config["routers"]:
        router["servers"] = [
            {**server, "ip": ip, "port": ports[router["label"]]} for server in router["servers"]
        ]
    return config


def get(url: str, proxy: str | None = None, timeout: float = 5.0) -> tuple[int, str, Any]:
    handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), e.headers


def patch(url: str, body: dict[str, Any]) -> None:
    """A merge patch through the emulated API, as a controller would change endpoints."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Content-Type": "application/merge-patch+json"},
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        request, timeout=5
    ) as response:
        assert response.status == 200


def metrics(admin: str) -> dict[str, Any]:
    status, body, _ = get(f"http://{admin}/admin/metrics.json")
    assert status == 200, body
    flat: dict[str, Any] = json.loads(body)
    return flat


def counter(flat: dict[str, Any], *needles: str) -> float:
    return sum(
        v
        for k, v in flat.items()
        if all(n in k for n in needles) and k.endswith("/requests") and isinstance(v, int | float)
    )


def test_hello_world_across_two_nodes(processes: Any, tmp_path: Path) -> None:
    for node in NODES.values():
        for ip in node.values():
            if not _can_bind(ip):
                pytest.skip(f"loopback address {ip} not usable here")

    mesh_ips = [n["mesh"] for n in NODES.values()]
    outgoing = port_free_on_all(*mesh_ips)
    incoming = port_free_on_all(*mesh_ips)
    while incoming == outgoing:
        incoming = port_free_on_all(*mesh_ips)
    hello_port = free_port(NODES["node1"]["app"])
    world_port = free_port(NODES["node2"]["app"])
    api_port = free_port()

    objects = [
        slice_for("hello", "http", hello_port, [(NODES["node1"]["app"], "node1", "hello-abc")]),
        slice_for(
            "world-v1", "http", world_port, [(NODES["node2"]["app"], "node2", "world-v1-def")]
        ),
        slice_for(
            "l5d",
            "incoming",
            incoming,
            [
                (NODES["node1"]["mesh"], "node1", "l5d-n1"),
                (NODES["node2"]["mesh"], "node2", "l5d-n2"),
            ],
        ),
    ]
    (tmp_path / "objects.json").write_text(json.dumps(objects))
    processes.start(
        sys.executable,
        str(HERE / "k8s_kmock_server.py"),
        "--port",
        str(api_port),
        "--objects",
        str(tmp_path / "objects.json"),
        name="kmock",
    )
    wait_for_port("127.0.0.1", api_port)

    admins = {}
    meshes = {}
    for node, ips in NODES.items():
        admin = free_port(ips["mesh"])
        admins[node] = f"{ips['mesh']}:{admin}"
        path = tmp_path / f"{node}.yaml"
        path.write_text(yaml.safe_dump(node_config(node, api_port, outgoing, incoming, admin)))
        meshes[node] = processes.l5d(
            "run", str(path), env={"NODE_NAME": node, "POD_IP": ips["mesh"]}, name=f"l5d-{node}"
        )

    node1_proxy = f"http://{NODES['node1']['mesh']}:{outgoing}"
    processes.l5d(
        "example",
        "hello",
        "--ip",
        NODES["node1"]["app"],
        "--port",
        str(hello_port),
        env={"http_proxy": node1_proxy, "POD_IP": NODES["node1"]["app"]},
        name="hello",
    )
    processes.l5d(
        "example",
        "world",
        "--ip",
        NODES["node2"]["app"],
        "--port",
        str(world_port),
        env={"POD_IP": NODES["node2"]["app"]},
        name="world",
    )

    try:
        for ips in NODES.values():
            wait_for_port(ips["mesh"], outgoing, timeout=20)
            wait_for_port(ips["mesh"], incoming, timeout=20)
        wait_for_port(NODES["node1"]["app"], hello_port)
        wait_for_port(NODES["node2"]["app"], world_port)

        expected = f"Hello ({NODES['node1']['app']}) world ({NODES['node2']['app']})!"
        answers: list[Any] = []

        def hello_answers() -> bool:
            answers.append(get("http://hello/", proxy=node1_proxy))
            return answers[-1][0] == 200

        wait_until(hello_answers, timeout=20, interval=0.2, what="hello through the mesh")
        status, body, headers = answers[-1]
        assert body.strip() == expected, body
        assert "linkerd" in (headers.get("Via") or "")

        # The world call went node1 outgoing -> node2 incoming -> world, hello's call was
        # delivered by node1's own incoming: the routers' metrics say so.
        def routed() -> bool:
            m1, m2 = metrics(admins["node1"]), metrics(admins["node2"])
            return (
                counter(
                    m1,
                    "rt/outgoing/client/%/io.l5d.k8s.daemonset/default/incoming/l5d/#/io.l5d.k8s/default/http/world-v1/",
                )
                >= 1
                and counter(
                    m2,
                    "rt/incoming/client/%/io.l5d.k8s.localnode/node2/#/io.l5d.k8s/default/http/world-v1/",
                )
                >= 1
                and counter(m2, "rt/incoming/server/") >= 1
                and counter(m2, "rt/incoming/service/svc/world/") >= 1
                and counter(
                    m1,
                    "rt/incoming/client/%/io.l5d.k8s.localnode/node1/#/io.l5d.k8s/default/http/hello/",
                )
                >= 1
                and counter(m2, "rt/incoming/client/", "hello") == 0
                and counter(m2, "rt/outgoing/server/") == 0
            )

        wait_until(
            routed, timeout=10, what="routers' metrics showing outgoing(node1) -> incoming(node2)"
        )
        # Live: node2's mesh pod leaves the DaemonSet's endpoints -> world has no mesh pod
        # on its node, the name is negative and hello's call fails; it comes back -> works.
        l5d_url = f"http://127.0.0.1:{api_port}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/l5d-x1"
        l5d_slice = objects[2]
        patch(l5d_url, {"endpoints": l5d_slice["endpoints"][:1]})
        wait_until(
            lambda: get("http://hello/", proxy=node1_proxy)[0] != 200,
            timeout=5,
            what="world unroutable without node2's mesh pod",
        )
        patch(l5d_url, {"endpoints": l5d_slice["endpoints"]})
        wait_until(
            lambda: get("http://hello/", proxy=node1_proxy)[1].strip() == expected,
            timeout=5,
            what="world routable again",
        )

        # node1's namer state shows the shared watch and the DaemonSet's pods
        status, body, _ = get(f"http://{admins['node1']}/namer_state/io.l5d.k8s.json")
        assert status == 200, body
        state = json.loads(body)
        assert "l5d" in json.dumps(state) and "world-v1" in json.dumps(state)
    except BaseException:
        for proc in meshes.values():
            print(processes.log(proc)[-3000:])
        raise
    finally:
        for proc in meshes.values():
            assert proc.poll() is None or proc.returncode in (0, -15), processes.log(proc)[-3000:]


def _can_bind(ip: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False
