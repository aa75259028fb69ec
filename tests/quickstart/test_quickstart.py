"""The README's quickstart, run as written (issue 16 "Done when", first line).

The first command is read from README.md (never copied here) and run by ``bash -c`` in a
copy of this checkout, with a fresh ``.venv`` made by the command itself:

- exactly as written: ``python3 -m venv .venv`` and the ``pip install`` (from the package
  index pip is configured with, through pip's cache), and the demo command itself;
- changed: the demo's ports are moved to free loopback ports by appending its port flags
  to the line (the command allows that), since 4140 and friends may be taken on the test
  machine; the request goes through the moved outgoing router instead of 4140.

The demo runs until stopped: the test waits for its banner, gets ``Hello ... world ...!``
through the mesh's outgoing router, and stops it by PID (SIGTERM to the process group it
started; the demo then stops its own children by PID).

The second command (the test suite) is not run (this test is part of it); the checks
below keep the README's account of it in step with ``.ci/run`` and ``scripts/setup.sh``.
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from l5d_testing import free_port, port_open, wait_until

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

# the demo's flags for each port, as the demo names them
PORT_FLAGS = (
    "--outgoing-port",
    "--incoming-port",
    "--admin-port",
    "--hello-port",
    "--world-ports",
    "--control-port",
)


def quickstart_section(text: str | None = None) -> str:
    text = README.read_text() if text is None else text
    start = text.index("\n## Quickstart\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def first_line(block: str) -> str:
    return next(line for line in block.splitlines() if line.strip() and line[0] != "#")


def first_command() -> str:
    """The README's first command: the first line of the quickstart's first sh block."""
    return first_line(sh_blocks(quickstart_section())[0])


def second_command() -> str:
    """The first sh block of the quickstart's second part (the test suite)."""
    section = quickstart_section()
    return first_line(sh_blocks(section[section.index("\n### 2.") :])[0])


def split_commands(line: str) -> list[list[str]]:
    """``a b && c d`` -> [[a, b], [c, d]] (the quickstart uses no other shell syntax)."""
    commands: list[list[str]] = [[]]
    for token in shlex.split(line, comments=True):
        if token == "&&":
            commands.append([])
        else:
            assert not set(token) & set(";|&<>$`"), f"unexpected shell syntax: {token!r}"
            commands[-1].append(token)
    return commands


def test_the_first_command_makes_a_venv_installs_into_it_and_runs_the_demo() -> None:
    """The shape the run below relies on (and the point of issue 16 item 1)."""
    commands = split_commands(first_command())
    assert commands[0] == ["python3", "-m", "venv", ".venv"]
    assert any(c[:2] in (["pip", "install"], [".venv/bin/pip", "install"]) for c in commands)
    assert all(c[0].startswith(".venv/") for c in commands[1:])  # nothing outside the venv
    assert commands[-1][1:] == ["demo"] and commands[-1][0].endswith("l5d-twisted")


def copy_checkout(dest: Path) -> None:
    """This checkout's files as a fresh clone would have them, plus uncommitted edits."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            timeout=60,
        )
        names = listed.stdout.decode().split("\0") if listed.returncode == 0 else None
    except FileNotFoundError:  # no git
        names = None
    if names is None:  # not a git checkout (an sdist): everything but the caches
        shutil.copytree(
            REPO,
            dest,
            ignore=shutil.ignore_patterns(".git", ".venv", ".tools", ".cache", "build", "dist"),
        )
        return
    for name in names:
        source = REPO / name
        if name and source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def fresh_env() -> dict[str, str]:
    """The user's environment without this test run's Python set-up leaking into the venv."""
    env = dict(os.environ)
    for var in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "http_proxy", "HTTP_PROXY"):
        env.pop(var, None)
    virtual_env = os.environ.get("VIRTUAL_ENV")
    if virtual_env:  # the test's own venv off the PATH: `python3` is the user's python3
        bin_dir = str(Path(virtual_env) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != bin_dir)
    return env


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_first_command_as_written_answers_hello_world_through_the_mesh(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    copy_checkout(repo)
    assert (repo / "setup.py").is_file() and not (repo / ".venv").exists()

    ports: list[int] = []
    while len(ports) < 7:
        port = free_port()
        if port not in ports:
            ports.append(port)
    outgoing, incoming, admin, hello, world1, world2, control = ports
    moved = [
        *("--outgoing-port", str(outgoing), "--incoming-port", str(incoming)),
        *("--admin-port", str(admin), "--hello-port", str(hello)),
        *("--world-ports", f"{world1},{world2}", "--control-port", str(control)),
    ]
    assert {flag for flag in moved if flag.startswith("--")} == set(PORT_FLAGS)
    line = first_command() + " " + shlex.join(moved)

    log_path = tmp_path / "quickstart.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", line],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=fresh_env(),
            start_new_session=True,
        )

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        # pip install from the index (cached after the first run), then the demo's start-up
        wait_until(
            lambda: "Ctrl-C stops everything" in output() or proc.poll() is not None,
            timeout=600,
            interval=0.5,
            what="the demo's banner",
        )
        assert proc.poll() is None, f"exited {proc.returncode}:\n{output()[-4000:]}"

        conn = http.client.HTTPConnection("127.0.0.1", outgoing, timeout=30)
        try:
            conn.request("GET", "http://hello/", headers={"Host": "hello"})
            response = conn.getresponse()
            status, body = response.status, response.read().decode()
        finally:
            conn.close()
        assert status == 200, body
        assert re.fullmatch(
            rf"Hello \(127\.0\.0\.1:{hello}\) world \(127\.0\.0\.1:({world1}|{world2})\)!", body
        ), body

        # it ran from the venv the command made, not from this checkout or the test's Python
        assert (repo / ".venv" / "bin" / "l5d-twisted").is_file()
        pids = re.search(r"processes: l5d (\d+)", output())
        assert pids, output()
        if Path("/proc/self/cmdline").exists():  # Linux (CI)
            mesh_argv = Path(f"/proc/{pids.group(1)}/cmdline").read_bytes().split(b"\0")
            assert Path(mesh_argv[0].decode()).parent == repo / ".venv" / "bin", mesh_argv
    finally:
        # stop by PID: SIGTERM to the group started above (bash and the demo), which stops
        # its children by PID; SIGKILL if it has not exited by the deadline
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
    assert proc.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), output()[-4000:]
    assert "demo stopped" in output()
    assert not [p for p in ports if port_open("127.0.0.1", p)]


def test_ci_runs_exactly_the_second_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert second_command() == "bash scripts/test.sh"
    assert f"\nexec {second_command()}\n" in ci


def test_the_second_commands_system_changes_are_stated_before_it() -> None:
    """Every Debian package setup.sh may install is named in the README above the command."""
    section = quickstart_section()
    part2 = section[section.index("\n### 2.") :]
    before = part2[: part2.index(second_command())]
    setup = (REPO / "scripts" / "setup.sh").read_text()
    packages = {
        p
        for group in re.findall(r"^APT_PACKAGES\+?=\(([^)]*)\)", setup, re.M)
        for p in group.split()
    }
    packages |= set(re.findall(r"APT_PACKAGES\+=\(([\w.-]+)\)", setup))  # the conditional ones
    assert {"prometheus", "chromium", "podman", "python3-venv"} <= packages
    missing = sorted(p for p in packages if not re.search(rf"(?<![\w-]){re.escape(p)}\b", before))
    assert not missing, f"setup.sh installs these, the README does not say so: {missing}"
    for said in ("sudo apt-get install", ".tools/", "pip install -e '.[test]'", ".venv"):
        assert said in before, said
