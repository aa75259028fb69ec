"""Shared test helpers (import with ``from l5d_testing import ...``): free loopback ports,
real processes stopped by PID, polling.

Every test that starts a server binds 127.0.0.1 (or another 127.x address) on a free port
and stops what it started.  No sleeps as synchronisation: poll with a deadline.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def no_gc() -> Iterator[None]:
    """The cyclic collector off (after one full collection): what a test frees inside must
    go by reference counting alone, as the per-name objects of a busy node should."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the thing polled may not be up yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})"
    )


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    wait_until(lambda: port_open(host, port), timeout, what=f"{host}:{port} to accept connections")


class Processes:
    """Starts processes and stops each by PID (SIGTERM, then SIGKILL) at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        name: str | None = None,
        cwd: str | None = None,
    ) -> subprocess.Popen[bytes]:
        name = name or os.path.basename(args[0])
        log_path = self.tmp_path / f"{name}-{len(self.procs)}.log"
        full_env = dict(os.environ)
        full_env.setdefault("PYTHONPATH", str(REPO))
        full_env.pop("http_proxy", None)
        full_env.pop("HTTP_PROXY", None)
        if env:
            full_env.update(env)
        with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                list(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
            )
        proc.log_path = str(log_path)  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def l5d(
        self, *args: str, env: dict[str, str] | None = None, name: str = "l5d"
    ) -> subprocess.Popen[bytes]:
        """Run ``l5d-twisted ARGS`` with this checkout's code."""
        return self.start(sys.executable, "-m", "l5d_twisted", *args, env=env, name=name)

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        # children the process may have left behind in its session
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return proc.returncode

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
