"""Helpers of the image tests: build the image with scripts/build-image.sh, run podman
hermetically, and turn rendered chart manifests into what `podman kube play` (4.3) runs.

Imported by the tests of this folder (a module with a unique name: tests are collected
without packages).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
_INIT = (REPO / "l5d_twisted" / "__init__.py").read_text()  # the version's one place
VERSION = re.search(r'^__version__ = "([^"]+)"$', _INIT, re.M).group(1)  # type: ignore[union-attr]
IMAGE = f"localhost/l5d-twisted:{VERSION}"
ARCHIVE = REPO / "dist" / f"l5d-twisted-{VERSION}.oci.tar"
# podman 4.3 on this kind of VM: crun refuses its hybrid cgroups (runc), no systemd
# (cgroupfs, events to a file), and no CAP_SYS_RESOURCE to raise limits (low ulimits;
# `kube play` has no --ulimit, containers.conf applies them to every container).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


@dataclass(frozen=True)
class Build:
    digest: str
    archive_bytes: int
    seconds: int
    output: str


def build_image(timeout: float = 1500) -> Build:
    """Run scripts/build-image.sh; parse what it prints."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh")],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    digest = re.search(r"^build-image: digest +(sha256:[0-9a-f]{64})$", out, re.M)
    size = re.search(r"^build-image: size +(\d+) bytes compressed", out, re.M)
    took = re.search(r"^build-image: took +(\d+) s", out, re.M)
    assert digest and size and took, out[-2000:]
    return Build(digest.group(1), int(size.group(1)), int(took.group(1)), out)


def existing_build() -> Build:
    """The archive already in dist/ (built earlier by scripts/build-image.sh)."""
    digest = subprocess.run(
        ["skopeo", "inspect", "--format", "{{.Digest}}", f"oci-archive:{ARCHIVE}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Build(digest, ARCHIVE.stat().st_size, 0, "")


class Podman:
    """podman with this machine's settings (a private containers.conf), recording what it
    starts so that everything is removed afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        conf = tmp / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf))
        self.played: list[Path] = []
        self.volumes: list[str] = []

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["podman", *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
            )
        return proc

    def play(self, name: str, docs: list[dict[str, Any]]) -> None:
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.played.append(path)
        # A ConfigMap becomes a volume of that name, which `kube down` leaves behind (and a
        # stale one would keep old contents): removed before and after.
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                self.volumes.append(doc["metadata"]["name"])
                self.run("volume", "rm", "--force", doc["metadata"]["name"], check=False)
        self.run("kube", "play", "--replace", str(path), timeout=180)

    def down_all(self) -> None:
        for path in reversed(self.played):
            self.run("kube", "down", str(path), check=False, timeout=120)
        self.played.clear()
        for volume in self.volumes:
            self.run("volume", "rm", "--force", volume, check=False)
        self.volumes.clear()

    def inspect(self, container: str) -> dict[str, Any]:
        (info,) = json.loads(self.run("container", "inspect", container).stdout)
        return dict(info)

    def logs(self, container: str) -> str:
        proc = self.run("logs", container, check=False)
        return proc.stdout + proc.stderr


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in env values, command and args (podman 4.3 leaves it)."""
    return re.sub(
        r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text
    )


def for_podman(
    spec: dict[str, Any], fields: dict[str, str], pod_ip: str, hosts_file: Path
) -> tuple[dict[str, Any], list[str]]:
    """A pod spec as podman 4.3 can run it on the host network: returns the new spec and the
    list of what was changed (the tests assert that nothing else is)."""
    spec = copy.deepcopy(spec)
    changes: list[str] = []
    # 1. The host's network (loopback addresses only), as hostNetwork pods on one node.
    if not spec.get("hostNetwork"):
        spec["hostNetwork"] = True
        changes.append("hostNetwork: true")
    # 2. Cluster DNS: Service and node names from a hosts file (hostAliases are ignored by
    #    podman 4.3 on the host network).
    spec.setdefault("volumes", []).append(
        {"name": "cluster-dns", "hostPath": {"path": str(hosts_file), "type": "File"}}
    )
    changes.append("/etc/hosts mounted from the test's cluster-DNS file")
    for container in spec["containers"]:
        container.setdefault("volumeMounts", []).append(
            {"name": "cluster-dns", "mountPath": "/etc/hosts", "readOnly": True}
        )
        # 3. The downward API's fields as values (podman 4.3 has no status.*, spec.nodeName,
        #    metadata.namespace), then $(VAR) expanded as the kubelet does.
        env: dict[str, str] = {}
        for entry in container.get("env", []):
            if "valueFrom" in entry:
                ref = entry.pop("valueFrom")["fieldRef"]["fieldPath"]
                entry["value"] = fields[ref]
                changes.append(f"{container['name']}: env {entry['name']} = {ref} given as a value")
            expanded = expand(entry["value"], env)
            if expanded != entry["value"]:
                changes.append(f"{container['name']}: env {entry['name']} $(...) expanded")
            entry["value"] = env[entry["name"]] = expanded
        for key in ("command", "args"):
            if key in container:
                new = [expand(a, env) for a in container[key]]
                # 4. Listen on the pod's loopback address, not on every interface of the host.
                new = [pod_ip if a == "0.0.0.0" else a for a in new]
                if new != container[key]:
                    changes.append(
                        f"{container['name']}: {key} $(...) expanded / 0.0.0.0 -> pod IP"
                    )
                container[key] = new
        # 5. ports: podman 4.3 publishes every containerPort (with hostPort or not) as a
        #    port mapping, which it refuses on the host network; there the processes'
        #    ports are the node's ports already (hostPort 4140 of the mesh included).
        if container.pop("ports", None):
            changes.append(f"{container['name']}: ports list dropped")
        # 6. Probes: podman would run httpGet/tcpSocket probes as curl/nc inside the image,
        #    which has neither; the tests perform the rendered probes from outside.
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if container.pop(probe, None) is not None:
                changes.append(f"{container['name']}: {probe} performed by the test")
    # 7. Init containers: podman 4.3's `kube play` fails to remove a finished "once" init
    #    container ("cannot remove container ... as it is running", a race of its own), so
    #    the pod would never start; run_init_containers() runs them, as the kubelet would,
    #    before the pod is played.
    for init in spec.pop("initContainers", []):
        changes.append(f"{init['name']}: init container run by the test before the pod")
    return spec, changes


def run_init_containers(
    podman: Podman, spec: dict[str, Any], files: dict[str, str], workdir: Path
) -> list[str]:
    """Run a rendered pod's init containers in order with ``podman run``, the files of their
    ConfigMap volume (mount path -> text) written under ``workdir`` and mounted read-only;
    returns each one's output and fails the test on a non-zero exit (as the kubelet would
    stop the pod)."""
    outputs = []
    for init in spec.get("initContainers", []):
        mounts = []
        for index, (target, text) in enumerate(sorted(files.items())):
            source = workdir / f"{init['name']}-{index}"
            source.write_text(text)
            mounts += ["--volume", f"{source}:{target}:ro"]
        env = [f"--env={e['name']}={e['value']}" for e in init.get("env", []) if "value" in e]
        proc = podman.run(
            "run", "--rm", "--network", "none", "--read-only", "--user", "10001",
            *env, *mounts, "--entrypoint", init["command"][0], IMAGE,
            *init["command"][1:], *init.get("args", []),
            check=False, timeout=120,
        )  # fmt: skip
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"init container {init['name']} failed:\n{output}"
        outputs.append(output)
    return outputs


def annotations_for_podman(metadata: dict[str, Any]) -> list[str]:
    """podman 4.3 checks annotation values against the 63-character limit of label values
    (Kubernetes allows 256 KB): longer ones (the mesh pod's checksum/config) are dropped."""
    annotations = metadata.get("annotations") or {}
    long = sorted(k for k, v in annotations.items() if len(str(v)) > 63)
    for key in long:
        del annotations[key]
    return [f"annotation {key} dropped" for key in long]


def pod_from_template(kind_doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A workload's pod template as a Pod (what its controller would create)."""
    template = kind_doc["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": kind_doc["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"].get("annotations", {}),
        },
        "spec": template["spec"],
    }
