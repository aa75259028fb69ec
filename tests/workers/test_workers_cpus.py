"""``workers: auto``: the CPUs a container may use, from a fake /proc and /sys/fs/cgroup."""

from __future__ import annotations

from pathlib import Path

from l5d_twisted.workers.cpus import available_cpus, cgroup_cpu_limit


def _v2(root: Path, own: str = "/", **cpu_max: str) -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(f"0::{own}\n")
    for folder, value in cpu_max.items():
        path = root / "sys/fs/cgroup" / folder.replace("__", "/").strip("_")
        path.mkdir(parents=True, exist_ok=True)
        (path / "cpu.max").write_text(value + "\n")
    return root


def test_cgroup_v2_limit_rounded_up(tmp_path: Path) -> None:
    root = _v2(tmp_path, _="150000 100000")
    assert cgroup_cpu_limit(root) == 1.5
    assert available_cpus(root, affinity=8) == 2


def test_cgroup_v2_without_limit_leaves_the_affinity(tmp_path: Path) -> None:
    root = _v2(tmp_path, _="max 100000")
    assert cgroup_cpu_limit(root) is None
    assert available_cpus(root, affinity=3) == 3


def test_affinity_below_the_limit_wins(tmp_path: Path) -> None:
    root = _v2(tmp_path, _="800000 100000")
    assert available_cpus(root, affinity=2) == 2


def test_at_least_one_cpu(tmp_path: Path) -> None:
    root = _v2(tmp_path, _="20000 100000")  # 200m
    assert cgroup_cpu_limit(root) == 0.2
    assert available_cpus(root, affinity=4) == 1


def test_the_tightest_of_the_own_cgroup_and_its_parents(tmp_path: Path) -> None:
    # No cgroup namespace: the process sees the host's tree; the pod's folder is limited.
    root = _v2(
        tmp_path,
        own="/kubepods/pod1/ctr",
        _="max 100000",
        kubepods__pod1="300000 100000",
        kubepods__pod1__ctr="max 100000",
    )
    assert cgroup_cpu_limit(root) == 3.0
    assert available_cpus(root, affinity=16) == 3


def test_cgroup_v1_quota_and_period(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("4:memory:/x\n3:cpu,cpuacct:/\n0::/\n")
    folder = tmp_path / "sys/fs/cgroup/cpu,cpuacct"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("250000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.5
    assert available_cpus(tmp_path, affinity=8) == 3
    (folder / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert available_cpus(tmp_path, affinity=8) == 8


def test_unreadable_or_garbled_files_mean_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None  # no /proc/self/cgroup at all
    root = _v2(tmp_path / "g", _="lots of cpus")
    assert cgroup_cpu_limit(root) is None
    assert available_cpus(root, affinity=2) == 2


def test_this_machine() -> None:
    assert available_cpus() >= 1
