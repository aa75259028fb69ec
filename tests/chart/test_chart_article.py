"""The chart matches linkerd 1's DaemonSet article (issue 16 item 4): the mesh Service can be a
LoadBalancer (or NodePort) with the settings of the common charts, NOTES.txt gives the
article's one-line curl (or a short in-cluster equivalent), and hello and world run 3
replicas.  Rendered with helm 3 and 4, validated against the Kubernetes schemas."""

from __future__ import annotations

import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_testlib import CHART, HELMS, NAMESPACE, RELEASE, find, helm, render

FULLNAME = f"{RELEASE}-l5d-twisted"
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def validate(doc: dict) -> None:
    for k8s in K8S_VERSIONS:
        kubernetes_validate.validate(doc, k8s, strict=True)


def notes(*sets: str) -> str:
    """NOTES.txt as `helm install` prints it (helm 4 renders an install without a cluster)."""
    args = [a for s in sets for a in ("--set", s)]
    result = helm(
        "helm4",
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        *args,
    )
    return result.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize("version", sorted(HELMS))
def test_default_service_is_cluster_ip_with_no_external_settings(version: str) -> None:
    service = find(render(version), "Service", FULLNAME)
    assert service["spec"]["type"] == "ClusterIP"
    for key in ("loadBalancerIP", "loadBalancerSourceRanges", "externalTrafficPolicy"):
        assert key not in service["spec"]
    assert all("nodePort" not in p for p in service["spec"]["ports"])
    # The transformer's and Prometheus's ports are there whatever the type.
    assert [p["name"] for p in service["spec"]["ports"]] == ["outgoing", "incoming", "admin"]


@pytest.mark.parametrize("version", sorted(HELMS))
def test_load_balancer_service_as_in_the_article(version: str) -> None:
    sets = (
        "service.type=LoadBalancer",
        "service.loadBalancerIP=203.0.113.10",
        "service.loadBalancerSourceRanges={198.51.100.0/24}",
        "service.loadBalancerClass=example.com/lb",
        "service.externalTrafficPolicy=Local",
        "service.nodePorts.outgoing=30140",
        "service.annotations.example\\.com/scheme=internal",
    )
    service = find(render(version, sets=sets), "Service", FULLNAME)
    validate(service)
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["loadBalancerIP"] == "203.0.113.10"
    assert spec["loadBalancerSourceRanges"] == ["198.51.100.0/24"]
    assert spec["loadBalancerClass"] == "example.com/lb"
    assert spec["externalTrafficPolicy"] == "Local"
    ports = {p["name"]: p for p in spec["ports"]}
    assert ports["outgoing"]["port"] == 4140 and ports["outgoing"]["nodePort"] == 30140
    assert "nodePort" not in ports["incoming"] and "nodePort" not in ports["admin"]
    assert service["metadata"]["annotations"] == {"example.com/scheme": "internal"}


@pytest.mark.parametrize("version", sorted(HELMS))
def test_node_port_service_drops_the_load_balancer_settings(version: str) -> None:
    sets = (
        "service.type=NodePort",
        "service.loadBalancerIP=203.0.113.10",
        "service.externalTrafficPolicy=Cluster",
        "service.nodePorts.admin=30990",
    )
    service = find(render(version, sets=sets), "Service", FULLNAME)
    validate(service)
    spec = service["spec"]
    assert spec["type"] == "NodePort" and "loadBalancerIP" not in spec
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert {p["name"]: p.get("nodePort") for p in spec["ports"]} == {
        "outgoing": None,
        "incoming": None,
        "admin": 30990,
    }


@pytest.mark.parametrize("version", sorted(HELMS))
@pytest.mark.parametrize(
    "values,name",
    [
        ({"service": {"type": "External"}}, "type"),
        ({"service": {"loadBalancerIP": "my-lb"}}, "loadBalancerIP"),
        ({"service": {"loadBalancerSourceRanges": ["everyone"]}}, "loadBalancerSourceRanges"),
        ({"service": {"externalTrafficPolicy": "Nearest"}}, "externalTrafficPolicy"),
        ({"service": {"nodePorts": {"outgoing": 70000}}}, "outgoing"),
    ],
    ids=["type", "lb-ip", "source-ranges", "traffic-policy", "node-port"],
)
def test_schema_rejects_bad_service_values(
    tmp_path: Path, version: str, values: dict, name: str
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = helm(version, "lint", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0
    assert "schema" in result.stdout + result.stderr and name in result.stdout + result.stderr


@pytest.mark.parametrize("version", sorted(HELMS))
def test_mesh_service_type_is_refused_naming_service_type(version: str) -> None:
    # mesh.service is the routers' linkerd 1 `service` block: a `type` there is a mistake.
    result = helm(
        version,
        "template",
        RELEASE,
        str(CHART),
        "--set",
        "mesh.service.type=LoadBalancer",
        check=False,
    )
    assert result.returncode != 0
    assert "mesh.service.type (LoadBalancer)" in result.stderr
    assert "is service.type (ClusterIP, NodePort or LoadBalancer)" in result.stderr


def curl_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if "curl" in line and "http" in line]


def test_notes_give_the_articles_one_line_curl_for_a_load_balancer() -> None:
    text = notes("service.type=LoadBalancer")
    assert "http_proxy=$INGRESS_LB:4140 curl -s http://hello" in text
    (lb_line,) = [
        line.strip() for line in text.splitlines() if line.strip().startswith("INGRESS_LB=")
    ]
    assert lb_line == (
        f"INGRESS_LB=$(kubectl -n {NAMESPACE} get service {FULLNAME} "
        "-o jsonpath='{.status.loadBalancer.ingress[0].*}')"
    )
    shlex.split(lb_line)  # well-quoted for a shell
    # The default NetworkPolicy admits pods only: NOTES say how to admit outside clients.
    assert "networkPolicy.outgoing.from" in text and "externalTrafficPolicy=Local" in text


def test_notes_give_a_node_port_curl() -> None:
    text = notes("service.type=NodePort")
    assert "http_proxy=$NODE_IP:$NODE_PORT curl -s http://hello" in text
    assert '{.spec.ports[?(@.name=="outgoing")].nodePort}' in text


def test_notes_give_a_short_in_cluster_curl_by_default() -> None:
    text = notes()
    (line,) = curl_lines(text)
    # One short command (the old one needed a 300-character --overrides), through the mesh
    # Service's outgoing port, which any pod reaches: the pod runs in the release namespace,
    # where the Service's short name resolves.
    assert line == (
        f"kubectl -n {NAMESPACE} run curl --rm -it --restart=Never --image=curlimages/curl "
        f"--env=http_proxy={FULLNAME}:4140 -- curl -s http://hello"
    )
    assert len(line) < 160 and "--overrides" not in text
    argv = shlex.split(line)
    assert argv[argv.index("--") + 1 :] == ["curl", "-s", "http://hello"]
    assert "INGRESS_LB" not in text and "networkPolicy.outgoing.from" not in text


def test_notes_name_the_service_pattern_without_the_sample_app() -> None:
    text = notes("hello-world.enabled=false", "service.type=LoadBalancer")
    assert "http_proxy=$INGRESS_LB:4140 curl -s http://<service>/" in text
    assert "sample app" not in text


@pytest.mark.parametrize("version", sorted(HELMS))
def test_hello_and_world_run_three_replicas_as_in_the_article(version: str) -> None:
    docs = render(version)
    for name in ("hello", "world-v1"):
        deployment = find(docs, "Deployment", name)
        assert deployment["spec"]["replicas"] == 3, name
        validate(deployment)
    tuned = render(version, sets=("hello-world.hello.replicas=1",))
    assert find(tuned, "Deployment", "hello")["spec"]["replicas"] == 1


@pytest.mark.parametrize("version", sorted(HELMS))
def test_readme_load_balancer_example_renders_what_it_says(version: str) -> None:
    # chart/README.md's `helm upgrade` for the article's load balancer, as written.
    readme = (CHART / "README.md").read_text()
    block = readme.split("The article's way", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    command = block.replace("\\\n", " ").splitlines()[0]
    argv = shlex.split(command)
    assert argv[:2] == ["helm", "upgrade"]
    flags = [a for a in argv[argv.index("--reuse-values") + 1 :]]
    out = helm(version, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *flags)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    service = find(docs, "Service", FULLNAME)
    validate(service)
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    policy = find(docs, "NetworkPolicy", FULLNAME)
    validate(policy)
    outgoing = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == 4140]
    assert {"ipBlock": {"cidr": "203.0.113.0/24"}} in outgoing[0]["from"]
    # The curl line is the article's.
    assert "http_proxy=$INGRESS_LB:4140 curl -s http://hello" in block
