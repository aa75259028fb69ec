"""``workers: auto``: how many CPUs this process may use, as a container sees it.

The smallest of:

* the CPU affinity mask (``os.sched_getaffinity``: cpusets, ``taskset``), or the machine's
  CPU count where there is no such call;
* the cgroup CPU limit (what a Kubernetes ``resources.limits.cpu`` becomes), rounded up:
  cgroup v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``), cgroup v1
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota ``-1``: none).  The process's own
  cgroup (``/proc/self/cgroup``) and each of its parents are read, the tightest limit
  wins (a container without a cgroup namespace sees the host's hierarchy);

and at least 1.  Every file is read under ``root`` (``/`` in production), so a test can
lay out a fake ``/proc`` and ``/sys/fs/cgroup`` in a temporary folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def available_cpus(root: str | os.PathLike[str] = "/", affinity: int | None = None) -> int:
    """The CPUs available: affinity and cgroup limit, rounded up, at least 1."""
    cpus = affinity if affinity is not None else affinity_cpus()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit - 1e-9))
    return max(1, cpus)


def affinity_cpus() -> int:
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return len(getaffinity(0))
        except OSError:
            pass
    return os.cpu_count() or 1


def cgroup_cpu_limit(root: str | os.PathLike[str] = "/") -> float | None:
    """The tightest CPU limit (in CPUs) over this process's cgroups, or None if unlimited."""
    base = Path(root)
    limits: list[float] = []
    for hierarchy, controllers, path in _own_cgroups(base):
        if hierarchy == "0" and controllers == "":  # cgroup v2 (unified)
            for folder in _folders(base / "sys/fs/cgroup", path):
                limit = _v2_limit(folder / "cpu.max")
                if limit is not None:
                    limits.append(limit)
        elif "cpu" in controllers.split(","):  # cgroup v1
            for mount in ("cpu,cpuacct", "cpuacct,cpu", "cpu"):
                mounted = base / "sys/fs/cgroup" / mount
                if mounted.is_dir():
                    for folder in _folders(mounted, path):
                        limit = _v1_limit(folder)
                        if limit is not None:
                            limits.append(limit)
                    break
    return min(limits) if limits else None


def _own_cgroups(base: Path) -> list[tuple[str, str, str]]:
    """``/proc/self/cgroup`` lines as (hierarchy id, controllers, path); ``/`` if unreadable."""
    try:
        text = (base / "proc/self/cgroup").read_text()
    except (OSError, UnicodeDecodeError):
        return [("0", "", "/")]
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2] or "/"))
    return out or [("0", "", "/")]


def _folders(mount: Path, cgroup_path: str) -> list[Path]:
    """The cgroup's folder and each parent up to the mount point (those that exist)."""
    parts = [p for p in cgroup_path.split("/") if p and p not in (".", "..")]
    folders = []
    for depth in range(len(parts), -1, -1):
        folder = mount.joinpath(*parts[:depth])
        if folder.is_dir():
            folders.append(folder)
    return folders


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _v2_limit(cpu_max: Path) -> float | None:
    text = _read(cpu_max)
    if not text:
        return None
    fields = text.split()
    if len(fields) < 1 or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(folder: Path) -> float | None:
    quota_text, period_text = (
        _read(folder / "cpu.cfs_quota_us"),
        _read(folder / "cpu.cfs_period_us"),
    )
    if quota_text is None or period_text is None:
        return None
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None
