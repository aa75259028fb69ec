"""The mesh config rendered into the ConfigMap is accepted by `l5d-twisted check` for every
ci values file, and what the chart generates from bad values is rejected with the line: by
the mesh pods' check-config init container (run here on the rendered config) before the
routers start, and for a dtab that is not dtab entries already by the schema (`helm lint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_testlib import (
    CHART,
    CI_VALUES,
    HELMS,
    RELEASE,
    REPO,
    find,
    helm,
    mesh_config_text,
    render,
)

FULLNAME = f"{RELEASE}-l5d-twisted"


def check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "linkerd.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize("values_file", [pytest.param(p, id=p.name) for p in CI_VALUES])
def test_rendered_config_passes_check(tmp_path: Path, values_file: Path) -> None:
    docs = render("helm4", [values_file])
    configmap = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")
    )
    result = check(str(configmap["data"]["linkerd.yaml"]), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"


def test_check_names_the_line_of_a_bad_generated_value(tmp_path: Path) -> None:
    text = mesh_config_text(render(sets=["mesh.client.loadBalancer.kind=bogus"]))
    result = check(text, tmp_path)
    assert result.returncode != 0
    assert (
        "routers[0].client.loadBalancer.kind: unknown loadBalancer kind 'bogus'"
        in result.stdout + result.stderr
    )


def init_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec = find(docs, "DaemonSet")["spec"]["template"]["spec"]
    (check_config,) = spec["initContainers"]
    return dict(check_config)


def run_init_container(
    docs: list[dict[str, Any]], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The init container's command, run here on the ConfigMap's rendered config (mounted at
    /config in the pod)."""
    container = init_container(docs)
    argv = container["command"] + container["args"]
    assert argv[0] == "l5d-twisted", argv
    config = tmp_path / "config"
    config.mkdir()
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap" and "linkerd.yaml" in d["data"]]
    (config / "linkerd.yaml").write_text(configmap["data"]["linkerd.yaml"])
    local = [str(config / "linkerd.yaml") if a == "/config/linkerd.yaml" else a for a in argv[1:]]
    return subprocess.run(
        [sys.executable, "-m", "l5d_twisted", *local],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize("version", sorted(HELMS))
def test_init_container_checks_the_rendered_config_before_the_routers(version: str) -> None:
    docs = render(version)
    spec = find(docs, "DaemonSet", FULLNAME)["spec"]["template"]["spec"]
    check_config = init_container(docs)
    (mesh,) = spec["containers"]
    assert check_config["name"] == "check-config"
    assert check_config["image"] == mesh["image"]
    assert check_config["command"] == ["l5d-twisted"]
    assert check_config["args"] == ["check", "/config/linkerd.yaml"]
    # What check prints on failure becomes the termination message (kubectl describe pod).
    assert check_config["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert mesh["terminationMessagePolicy"] == "FallbackToLogsOnError"
    mounts = {m["name"]: m for m in check_config["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/config" and mounts["config"]["readOnly"]
    # The same file the proxy runs.
    assert "/config/linkerd.yaml" in mesh["args"]
    assert check_config["securityContext"] == mesh["securityContext"]
    for k8s in ("1.29.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(find(docs, "DaemonSet", FULLNAME), k8s, strict=True)


@pytest.mark.parametrize("values_file", [pytest.param(p, id=p.name) for p in CI_VALUES])
def test_init_container_passes_every_ci_values_file(tmp_path: Path, values_file: Path) -> None:
    result = run_init_container(render("helm4", [values_file]), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "dtab,problem",
    [
        (
            "/srv => /#/io.l5d.k8s/default/http; /svc => /srv | | /x",
            "routers[0].dtab: invalid dtab: expected a name",
        ),
        ("/svc => /srv/hello (", "routers[0].dtab: invalid dtab"),
    ],
    ids=["empty-alternative", "open-paren"],
)
def test_a_dtab_the_schema_lets_through_stops_at_the_init_container(
    tmp_path: Path, dtab: str, problem: str
) -> None:
    # The schema's pattern is a first line of defence: this dtab looks like one and renders.
    docs = render("helm4", sets=[f"mesh.dtab={dtab}"])
    result = run_init_container(docs, tmp_path)
    assert result.returncode == 2
    # Readable in the container's log (its termination message): the file, line and key.
    assert f"{tmp_path}/config/linkerd.yaml:" in result.stderr
    assert problem in result.stderr, result.stderr


@pytest.mark.parametrize("version", sorted(HELMS))
@pytest.mark.parametrize(
    "dtab",
    [
        "hello",
        "/svc = /srv",
        "svc => /srv",
        "/svc =>",
        "/svc => /a; garbage",
        "/svc => /a\n/host => /b",
        "/svc => /a => /b",
    ],
    ids=[
        "word",
        "no-arrow",
        "no-slash",
        "no-destination",
        "trailing-garbage",
        "no-semicolon",
        "two-arrows",
    ],
)
def test_lint_refuses_a_dtab_that_is_not_dtab_entries(
    tmp_path: Path, version: str, dtab: str
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"mesh": {"dtab": dtab}}))
    result = helm(version, "lint", str(CHART), "-f", str(values), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "schema" in output and "dtab" in output, output


@pytest.mark.parametrize("version", sorted(HELMS))
def test_lint_accepts_dtabs_of_the_grammar(tmp_path: Path, version: str) -> None:
    # Weights, alternatives, wildcards, negation, addresses, empty rules and a trailing ';'.
    dtab = (
        "/srv => /#/io.l5d.k8s/default/http;;\n"
        "/svc/* => 0.9 * /srv/a & 0.1 * /srv/b;\n"
        "/host => /srv | /$/inet/127.0.0.1/8080;\n"
        "/nothing => !;\n"
    )
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"mesh": {"dtab": dtab}}))
    helm(version, "lint", "--strict", str(CHART), "-f", str(values))
    docs = render(version, [values])
    assert run_init_container(docs, tmp_path).returncode == 0
