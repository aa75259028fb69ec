"""A Kubernetes API that only answers discovery (/version, /api, /apis ...), served with
twisted.web on loopback: what `helm 3 install --dry-run=client` asks a cluster before it
renders (helm 4 needs no cluster).  Lists exactly the kinds the chart uses.

    python3 chart_fake_discovery.py --port N
"""

from __future__ import annotations

import argparse
import json

from twisted.internet import reactor
from twisted.web import resource, server

# groupVersion -> [(resource, kind, namespaced)]
GROUPS: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("pods", "Pod", True),
        ("endpoints", "Endpoints", True),
        ("namespaces", "Namespace", False),
    ],
    "apps/v1": [("daemonsets", "DaemonSet", True), ("deployments", "Deployment", True)],
    "rbac.authorization.k8s.io/v1": [
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
        ("roles", "Role", True),
        ("rolebindings", "RoleBinding", True),
    ],
    "discovery.k8s.io/v1": [("endpointslices", "EndpointSlice", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
}
VERSION = {"major": "1", "minor": "29", "gitVersion": "v1.29.0", "platform": "linux/amd64"}


def resource_list(group_version: str) -> dict[str, object]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": name,
                "singularName": "",
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            }
            for name, kind, namespaced in GROUPS[group_version]
        ],
    }


def group_list() -> dict[str, object]:
    groups = []
    for gv in GROUPS:
        if "/" in gv:
            name, version = gv.split("/")
            entry = {"groupVersion": gv, "version": version}
            groups.append({"name": name, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


class Discovery(resource.Resource):
    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        path = request.path.decode().rstrip("/")
        request.setHeader(b"content-type", b"application/json")
        if path == "/version":
            body: object = VERSION
        elif path == "/api":
            body = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        elif path == "/api/v1":
            body = resource_list("v1")
        elif path == "/apis":
            body = group_list()
        elif path.startswith("/apis/") and path[len("/apis/") :] in GROUPS:
            body = resource_list(path[len("/apis/") :])
        else:
            request.setResponseCode(404)
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
            }
        return json.dumps(body).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    reactor.listenTCP(args.port, server.Site(Discovery()), interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
