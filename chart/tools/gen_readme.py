"""Generate chart/README.md from the `# --` comments of the chart's values files.

helm-docs style: a `# -- text` comment (continued by further `#` lines) documents the key on
the next line; the table lists each documented key with its type and default.  The parent
chart's values come first, then each local subchart's under its name (`prometheus.port`).

    python3 chart/tools/gen_readme.py           # rewrite chart/README.md
    python3 chart/tools/gen_readme.py --check   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent
SUBCHARTS = ("hello-world", "prometheus", "grafana")
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]+\")\s*:(?:\s|$)")
DOC_START = re.compile(r"^\s*# -- ?(?P<text>.*)$")
DOC_MORE = re.compile(r"^\s*# ?(?P<text>.*)$")


@dataclass(frozen=True)
class ValueDoc:
    key: str
    type: str
    default: str
    description: str


def documented_keys(text: str) -> dict[tuple[str, ...], str]:
    """Map each documented key path to its description."""
    docs: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        start = DOC_START.match(line)
        if start:
            pending = [start.group("text").strip()]
            continue
        if pending is not None and line.lstrip().startswith("#"):
            more = DOC_MORE.match(line)
            if more:
                pending.append(more.group("text").strip())
            continue
        key = KEY_LINE.match(line)
        if not key or line.lstrip().startswith("-"):
            if line.strip() and not line.lstrip().startswith("#"):
                pending = None
            continue
        indent = len(key.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key.group("key").strip('"')))
        if pending is not None:
            docs[tuple(name for _, name in stack)] = " ".join(p for p in pending if p)
            pending = None
    return docs


def leaf_paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Key paths of every scalar, list or empty map in a values tree."""
    if isinstance(value, dict) and value:
        paths: list[tuple[str, ...]] = []
        for key, child in value.items():
            paths.extend(leaf_paths(child, (*prefix, str(key))))
        return paths
    return [prefix]


def lookup(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = values
    for part in path:
        node = node[part]
    return node


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def value_docs(values_file: Path, prefix: str = "") -> list[ValueDoc]:
    text = values_file.read_text()
    values = yaml.safe_load(text) or {}
    rows = []
    for path, description in documented_keys(text).items():
        default = lookup(values, path)
        shown = json.dumps(default) if not isinstance(default, str) else json.dumps(default)
        rows.append(ValueDoc(prefix + ".".join(path), type_name(default), shown, description))
    return rows


def undocumented(values_file: Path) -> list[str]:
    """Leaf keys with neither their own `# --` comment nor a documented ancestor."""
    text = values_file.read_text()
    docs = documented_keys(text)
    values = yaml.safe_load(text) or {}
    missing = []
    for path in leaf_paths(values):
        if not any(path[:n] in docs for n in range(1, len(path) + 1)):
            missing.append(".".join(path))
    return missing


def escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    lines = [
        f"# {chart['name']}",
        "",
        f"![Version: {chart['version']}](https://img.shields.io/badge/Version-{chart['version']}-informational) "
        f"![AppVersion: {chart['appVersion']}](https://img.shields.io/badge/AppVersion-{chart['appVersion']}-informational)",
        "",
        " ".join(chart["description"].split()),
        "",
        "One proxy per node (a DaemonSet): apps send their HTTP with `http_proxy=$(NODE_NAME):4140`;",
        "router `outgoing` (4140) forwards to the mesh pod on the destination's node, router `incoming`",
        "(4141) delivers to the local pod; admin, dashboard and metrics on 9990.  The local subcharts",
        "(`charts/`) add linkerd 1's hello/world sample app, a Prometheus with recording rules and",
        "success-rate SLO alerts, and a Grafana with the dashboards of `dashboards/` (also importable",
        "by hand).  No chart repository is needed.",
        "",
        "## Install",
        "",
        "```sh",
        "helm install mesh ./chart --namespace mesh --create-namespace",
        "helm test mesh --namespace mesh     # l5d-twisted smoke: admin, proxy, Prometheus, Grafana",
        "```",
        "",
        "`helm install` prints the next steps (NOTES.txt): how apps send through the node's proxy,",
        "a one-line call of the sample app (see below), and the port-forwards to the admin",
        "dashboard, Prometheus and Grafana.  Each `ci/*-values.yaml` is a tested example:",
        "`mesh-only-values.yaml` (the mesh alone, namespaced RBAC), `tuned-values.yaml` (per-prefix",
        "client/service policies, host network, private registry), `override-values.yaml` (a",
        "hand-written mesh config), `loadbalancer-values.yaml` (the article's load balancer, kept",
        "to one client network).  Uninstall with `helm uninstall mesh -n mesh`.",
        "",
        "## Calling the sample app",
        "",
        "hello and world run 3 replicas each, as in linkerd 1's DaemonSet article, so the",
        "per-instance views have instances to compare.  The mesh Service is `ClusterIP` by",
        "default: from a pod, through the Service's outgoing port,",
        "",
        "```sh",
        "kubectl -n mesh run curl --rm -it --restart=Never --image=curlimages/curl \\",
        "  --env=http_proxy=mesh-l5d-twisted:4140 -- curl -s http://hello",
        "```",
        "",
        "The article's way, from your machine through a cloud load balancer:",
        "",
        "```sh",
        "helm upgrade mesh ./chart -n mesh --reuse-values --set service.type=LoadBalancer \\",
        "  --set-json 'service.loadBalancerSourceRanges=[\"203.0.113.0/24\"]' --set service.externalTrafficPolicy=Local \\",
        '  --set-json \'networkPolicy.outgoing.from=[{"namespaceSelector":{}},{"ipBlock":{"cidr":"203.0.113.0/24"}}]\'',
        "INGRESS_LB=$(kubectl -n mesh get service mesh-l5d-twisted -o jsonpath='{.status.loadBalancer.ingress[0].*}')",
        "http_proxy=$INGRESS_LB:4140 curl -s http://hello",
        "```",
        "",
        "(`service.type=NodePort` likewise, with a node's address and the `outgoing` node port; NOTES",
        "prints the commands.)  A load balancer or node port opens every port of the Service",
        "(outgoing, incoming, admin) to whoever reaches it, and the outgoing router is an HTTP proxy",
        "into the cluster's services: keep `loadBalancerSourceRanges` to your addresses.  The",
        "NetworkPolicy still applies at the pods: it admits the outgoing port from pods only unless",
        "`networkPolicy.outgoing.from` lists the outside clients, which it sees by their own address",
        "only with `externalTrafficPolicy=Local` (with `Cluster` the node masquerades them).",
        "`mesh.service` is something else: the routers' linkerd 1 `service` block (retries,",
        "timeouts); a `mesh.service.type` is refused with a pointer to `service.type`.",
        "",
        "## Config checked before the routers start",
        "",
        "The mesh pods' init container `check-config` runs `l5d-twisted check /config/linkerd.yaml`",
        "on the rendered config: a value that renders but that the mesh refuses (a dtab that does",
        "not parse, an unknown `kind`, a bad key under `mesh.client` or `mesh.configOverride`) stops",
        "the pod in `Init:Error` with the problem and its line as the container's termination",
        "message (`kubectl describe pod`, under Init Containers; `kubectl logs <pod> -c",
        "check-config`), instead of a crash-looping proxy.  `helm lint` and `helm install` catch",
        "what the schema can first: `mesh.dtab` must be `/prefix => destination` entries separated",
        "by `;` (a pattern that refuses obvious garbage, not a parser).",
        "",
        "## What it deploys",
        "",
        "| Resource | Why |",
        "|----------|-----|",
        "| DaemonSet `<release>-l5d-twisted` | init container `check-config` (`l5d-twisted check` on the config), then `l5d-twisted run /config/linkerd.yaml --admin-ip $(POD_IP)` on every node: `outgoing` 4140 (hostPort), `incoming` 4141, admin 9990 on the pod's IP; httpGet probes (readiness `/ready`, liveness `/admin/ping`); non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp; terminationGracePeriodSeconds > `drainPeriodMs + shutdownGraceMs` so SIGTERM drains |",
        "| Service `<release>-l5d-twisted` (`service.type`: ClusterIP, NodePort or LoadBalancer) | ports `outgoing`, `incoming`, `admin`: the daemonset transformer finds each node's mesh pod in its endpoints (port `incoming`); Prometheus discovers the pods through it (port `admin`) |",
        "| NetworkPolicy `<release>-l5d-twisted` (`networkPolicy.enabled`) | ingress of the mesh pods: admin only from this release's Prometheus and helm test pods, incoming only from mesh pods, outgoing from any pod (see Security below) |",
        "| ConfigMap `<release>-l5d-twisted-config` | the mesh config generated from `mesh.*` (or `mesh.configOverride`); its checksum annotation rolls the pods on change |",
        "| ServiceAccount, ClusterRole/Role + binding | get/list/watch on `endpoints` and `discovery.k8s.io` `endpointslices`, nothing else; the `io.l5d.k8s` namer reaches the API in-cluster (no `kubectl proxy` sidecar) |",
        "| `hello-world` subchart | Deployments (3 replicas each) and headless Services `hello` (7777) and `world-v1` (7778), port `http`; hello sends with `http_proxy=$(NODE_NAME):4140`.  The names are fixed (the dtab routes to them): one sample app per namespace |",
        "| `prometheus` subchart | `prom/prometheus` scraping the mesh's admin port by Kubernetes `endpoints` discovery (namespaced Role), linkerd-viz's label shortening (`client`/`service` = last path segment), recording rules of the top line and multi-window multi-burn-rate alerts on the per-service success-rate SLO (`prometheus.slo.successRate`); storage is an emptyDir |",
        "| `grafana` subchart | `grafana/grafana` with the Prometheus datasource and the dashboards provisioned from ConfigMaps at start; anonymous viewers by default; admin password in a Secret kept across upgrades |",
        "| Pods `<release>-l5d-twisted-smoke-*` (`helm test`) | `l5d-twisted smoke` from the project image: admin ping and a request through the node's proxy to hello; Prometheus targets up with a non-zero request rate; Grafana healthy and serving the dashboards |",
        "",
        "The images: `image.*` for the mesh and the test pods, `hello-world.image.*` for the sample",
        "app (set both when you change them), `prometheus.image.*` and `grafana.image.*` for the",
        "official images.  The project's default is `localhost/l5d-twisted:<appVersion>`",
        "(`IfNotPresent`), the name `bash scripts/build-image.sh` gives the image it builds: load",
        "that into the nodes, or push it to a registry and set `image.repository`.  Each `*.image.digest`",
        "(`sha256:...`) pins a pod to `repository@digest`, which is how a registry's image is",
        "pinned; an image loaded into the nodes (kind, minikube, k3s) is found by its tag.",
        "",
        "## Security defaults",
        "",
        "- **Who reaches which port** (NetworkPolicy, `networkPolicy.*`, needs a network plugin",
        "  that enforces it): admin 9990 only from this release's Prometheus and helm test pods",
        "  (`networkPolicy.admin.from` adds peers, e.g. another Prometheus); incoming 4141 only from",
        "  the mesh's own pods; outgoing 4140 from any pod (`networkPolicy.outgoing.from`).  The",
        "  kubelet's probes come from the pod's own node, which NetworkPolicy always admits.  4140",
        "  is a hostPort: the policy sees that traffic after the node forwards it to the pod, by its",
        "  source address, so it cannot tell it from traffic to the pod's IP and cannot restrict the",
        "  node's port itself; traffic the node masquerades has the node's address and is admitted",
        "  when it comes from the pod's own node.  No policy is rendered with `mesh.hostNetwork`",
        "  (policies do not reliably apply to host-network pods).  Egress is not restricted.",
        "- **Admin on the pod's IP** (`mesh.admin.bindPodIP`): `l5d-twisted run --admin-ip",
        "  $(POD_IP)`, not 0.0.0.0, so nothing that makes the proxy dial 127.0.0.1 reaches it.",
        "  `kubectl port-forward` dials the pod's loopback, so it does not reach the admin then",
        "  (NOTES.txt says how to switch).  `/admin/shutdown`, the one mutating endpoint, is off:",
        "  the generated config says `admin.allowShutdown: false`.",
        "- **Clients' routing headers**: the outgoing router ignores a request's own dtab",
        "  (`l5d-dtab`, and `l5d-ctx-dtab`) unless `mesh.outgoing.requestDtab.enabled`; even then",
        "  it may delegate only to names the operator routes to unless `allowAddresses`, and never",
        "  to the mesh's own ports or link-local metadata addresses.  `clearContext` (per router,",
        "  off) drops every `l5d-ctx-*`, `l5d-dtab` and `l5d-sample` a client sends; keep it off",
        "  where apps pass on the context (deadlines, traces) of the requests they serve.",
        "",
        "## Per-request staging (`l5d-dtab`)",
        "",
        "Part VI of the series tests a new version per request before shifting traffic to it: with",
        "a `world-v2` Service deployed next to `world-v1`, a request carrying",
        "`l5d-dtab: /host/world => /srv/world-v2` reaches world-v2 while every other request still",
        "reaches world-v1.  It is off by default; turn it on for both routers:",
        "",
        "```sh",
        "helm upgrade mesh ./chart -n mesh --reuse-values \\",
        "  --set mesh.outgoing.requestDtab.enabled=true --set mesh.incoming.requestDtab.enabled=true",
        "# from a pod: http_proxy=$HOST_IP:4140 curl -H 'l5d-dtab: /host/world => /srv/world-v2' http://hello/",
        "```",
        "",
        "The outgoing router binds the name with the request's dtab and forwards that dtab as",
        "`l5d-ctx-dtab`; the incoming router on the chosen node binds the name again, and apps pass",
        "`l5d-ctx-dtab` on to their own calls, so the override follows the request through hello to",
        "world.  An incoming router that does not honour request dtabs removes the forwarded one on",
        "arrival: the staged request then reaches world-v1 (tried on the chart's two-node loopback",
        "set-up), so the render fails if only the outgoing router has it.  With staging on, anything",
        "that reaches 4140 may reroute its own requests within the operator's names: turn it on",
        "where the callers are trusted (a staging namespace or cluster).",
        "",
        "## Drain",
        "",
        "On SIGTERM the mesh keeps accepting for `mesh.admin.drainPeriodMs` while `/ready` answers",
        "503 (the readiness probe takes the pod out of the Service) and keep-alive connections get",
        "`Connection: close` on their next response; then it stops listening and gives in-flight",
        "requests `mesh.admin.shutdownGraceMs`.  terminationGracePeriodSeconds is derived from both",
        "plus `terminationGraceMarginSeconds`.  There is no preStop hook: a preStop `sleep` would",
        "only delay the SIGTERM that starts this drain (and the image has no `sleep`).  Apps on the",
        "node reach the hostPort until the listener closes; between the old pod's exit and the new",
        "one's start on that node (a hostPort cannot surge), their requests are refused.",
        "",
        "## Dashboards",
        "",
        "`dashboards/l5d-twisted-top-line.json` (linkerd-viz's: selectors router, service, instance;",
        "TOP LINE, a SERVICE METRICS row per service, PER-INSTANCE METRICS) and",
        "`dashboards/l5d-twisted-process.json` (uptime, CPU, memory, file descriptors, GC) are",
        "generated by `python3 tools/dashboards/generate.py` with grafana-foundation-sdk, Grafana's",
        "typed dashboard builder (a test extra; a test fails when the files differ), and can be",
        "imported into any Grafana by hand (they ask for a Prometheus datasource).  The 4XX and 5XX",
        "panels show 0 on a healthy mesh (`or vector(0)`: the counters exist only once an error was",
        "counted).",
        "",
        "## Values",
        "",
        "Generated from the `# --` comments of `values.yaml` and the subcharts' `values.yaml` by",
        "`python3 chart/tools/gen_readme.py` (a test fails when this table is out of date).",
        "",
        "| Key | Type | Default | Description |",
        "|-----|------|---------|-------------|",
    ]
    rows = value_docs(CHART / "values.yaml")
    for sub in SUBCHARTS:
        rows.extend(value_docs(CHART / "charts" / sub / "values.yaml", prefix=f"{sub}."))
    for row in rows:
        lines.append(
            f"| {escape(row.key)} | {row.type} | `{escape(row.default)}` | {escape(row.description)} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that README.md is up to date"
    )
    args = parser.parse_args(argv)
    readme = CHART / "README.md"
    text = render()
    if args.check:
        if readme.read_text() != text:
            print(
                f"{readme} is out of date: run python3 chart/tools/gen_readme.py", file=sys.stderr
            )
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
