"""Helpers of the chart tests: run helm 3/4 hermetically, render the chart, pick resources.

Imported by the tests of this folder (a module with a unique name: tests are collected
without packages).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
HELMS = {
    "helm4": REPO / ".tools" / "helm4" / "helm",
    "helm3": REPO / ".tools" / "helm3" / "helm",
}
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "mesh"
NAMESPACE = "mesh-ns"


@dataclass
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


def helm_env(home: Path) -> dict[str, str]:
    """helm's cache/config/data go to a private folder: tests never touch the user's helm."""
    env = dict(os.environ)
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        HOME=str(home),
    )
    env.pop("KUBECONFIG", None)
    return env


_HELM_HOME = Path(os.environ.get("TMPDIR", "/tmp")) / f"l5d-chart-tests-helm-{os.getpid()}"


def helm(
    version: str, *args: str, check: bool = True, kubeconfig: Path | None = None
) -> HelmResult:
    binary = HELMS[version]
    if not binary.exists():
        raise AssertionError(f"{binary} is missing: run bash scripts/fetch-helm.sh")
    _HELM_HOME.mkdir(parents=True, exist_ok=True)
    env = helm_env(_HELM_HOME)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )
    result = HelmResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout[-2000:]}"
        )
    return result


def value_args(values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> list[str]:
    args: list[str] = []
    for f in values_files:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    return args


@cache
def _render_cached(version: str, values_files: tuple[Path, ...], sets: tuple[str, ...]) -> str:
    return helm(
        version,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        *value_args(values_files, sets),
    ).stdout


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate keys, as the Kubernetes API's decoders do."""


def _construct_mapping(
    loader: StrictLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
    if duplicates:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {duplicates}", node.start_mark
        )
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def render(
    version: str = "helm4", values_files: Sequence[Path] = (), sets: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The chart's manifests (templates/tests included) as parsed documents (duplicate keys
    in a manifest fail the test)."""
    text = _render_cached(version, tuple(values_files), tuple(sets))
    return [doc for doc in yaml.load_all(text, Loader=StrictLoader) if doc]


def find(docs: Sequence[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in matches]}"
    )
    return matches[0]


def kinds(docs: Sequence[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for d in docs:
        yield d["kind"], d["metadata"]["name"]


def mesh_config_text(docs: Sequence[dict[str, Any]]) -> str:
    return str(find(docs, "ConfigMap", f"{RELEASE}-l5d-twisted-config")["data"]["linkerd.yaml"])


def endpoint_slice(
    name: str, service: str, port_name: str, port: int, endpoints: list[tuple[str, str]]
) -> dict[str, Any]:
    """An EndpointSlice of ``service`` for the emulated API: ``endpoints`` are (ip, node name)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": True}, "nodeName": node}
            for ip, node in endpoints
        ],
    }


def prometheus_files(docs: Sequence[dict[str, Any]]) -> dict[str, str]:
    return dict(find(docs, "ConfigMap", f"{RELEASE}-prometheus")["data"])


def localise(files: dict[str, str], folder: Path, targets_file: Path) -> tuple[Path, Path]:
    """Write the rendered Prometheus files for a local Prometheus: rules at a local path and
    the kubernetes_sd_configs block replaced by file_sd on ``targets_file`` (whose targets
    carry the same ``__meta_kubernetes_*`` labels, so the rendered relabelling is what runs).
    Returns (prometheus.yml, rules.yml)."""
    rules = folder / "rules.yml"
    rules.write_text(files["rules.yml"])
    config = yaml.safe_load(files["prometheus.yml"])
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        assert [sd["role"] for sd in job.pop("kubernetes_sd_configs")] == ["endpoints"]
        job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path, rules
