"""`l5d-twisted smoke`: its retry loop with a fake clock, its arguments, and the real checks
against a Grafana stand-in (twisted.web) serving the chart's rendered dashboards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chart_testlib import REPO, find, render
from l5d_testing import free_port, wait_for_port

from l5d_twisted.cli.smoke.checks import CheckResult, SmokeFailure, run_check, split_host_port

HERE = Path(__file__).resolve().parent


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FlakyCheck:
    name = "flaky"

    def __init__(self, clock: FakeClock, failures: int) -> None:
        self.clock = clock
        self.failures = failures
        self.calls = 0

    def attempt(self, timeout_s: float) -> str:
        self.calls += 1
        self.clock.now += 0.1  # each attempt takes a little time
        if self.calls <= self.failures:
            raise SmokeFailure(f"not yet ({self.calls})")
        return "fine"


def run_flaky(failures: int, timeout: float) -> tuple[CheckResult, list[tuple[str, str]]]:
    clock = FakeClock()
    seen: list[tuple[str, str]] = []
    result = run_check(
        FlakyCheck(clock, failures),
        timeout,
        1.0,
        clock=clock,
        sleep=clock.sleep,
        on_retry=lambda n, r: seen.append((n, r)),
    )
    return result, seen


def test_run_check_retries_until_it_passes() -> None:
    result, seen = run_flaky(failures=3, timeout=10)
    assert result.ok and result.detail == "fine" and result.attempts == 4
    assert result.elapsed_s == pytest.approx(3 * 1.1 + 0.1)
    assert seen == [("flaky", "not yet (1)"), ("flaky", "not yet (2)"), ("flaky", "not yet (3)")]


def test_run_check_gives_up_at_the_deadline_with_the_last_reason() -> None:
    result, _ = run_flaky(failures=1000, timeout=5)
    assert not result.ok
    assert result.detail.startswith("not yet (")
    assert result.elapsed_s <= 5.0 and result.attempts == 5


@pytest.mark.parametrize(
    "text,expected",
    [
        ("10.0.0.1:4140", ("10.0.0.1", 4140)),
        ("node-a", ("node-a", 4140)),
        ("[::1]:80", ("::1", 80)),
        ("http://h:1/", ("h", 1)),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text, 4140) == expected


@pytest.mark.parametrize("bad", ["h:0", "h:x", ":80", "h:70000"])
def test_split_host_port_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(bad, 4140)


def smoke(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "smoke", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_cli_rejects_bad_arguments_clearly() -> None:
    result = smoke()
    assert result.returncode == 2 and "nothing to check" in result.stderr
    result = smoke("--proxy", "host:notaport")
    assert result.returncode == 2 and "bad port" in result.stderr


def test_cli_fails_with_the_reason_when_nothing_answers() -> None:
    port = free_port()
    result = smoke("--admin", f"http://127.0.0.1:{port}", "--timeout", "1", "--interval", "0.2")
    assert result.returncode == 1
    assert f"FAIL admin: no answer from 127.0.0.1:{port}: ConnectionRefusedError" in result.stdout
    assert "smoke: 0 passed, 1 failed" in result.stdout


@pytest.fixture
def rendered_dashboards(tmp_path: Path) -> Path:
    """The dashboards exactly as the chart's ConfigMap provisions them into Grafana."""
    folder = tmp_path / "dashboards"
    folder.mkdir()
    configmap = find(render(), "ConfigMap", "mesh-l5d-twisted-dashboards")
    for name, text in configmap["data"].items():
        (folder / name).write_text(text)
    return folder


def test_grafana_check_against_standin(processes, rendered_dashboards: Path) -> None:
    port = free_port()
    processes.start(
        sys.executable,
        str(HERE / "chart_grafana_standin.py"),
        "--port",
        str(port),
        "--dashboards",
        str(rendered_dashboards),
        name="grafana",
    )
    wait_for_port("127.0.0.1", port)
    # What the chart's grafana test pod runs (its args), pointed at the stand-in.
    pod = find(render(), "Pod", "mesh-l5d-twisted-smoke-grafana")
    args = pod["spec"]["containers"][0]["args"]
    assert args[0] == "smoke"
    url_index = args.index("--grafana") + 1
    args = [*args[1:url_index], f"http://127.0.0.1:{port}", *args[url_index + 1 :]]
    result = smoke(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "PASS grafana: Grafana 11.6.0-standin healthy, "
        "serving 'l5d-twisted: mesh top line', 'l5d-twisted: process health'" in result.stdout
    )

    missing = smoke(
        "--grafana",
        f"http://127.0.0.1:{port}",
        "--dashboard",
        "nope",
        "--timeout",
        "1",
        "--interval",
        "0.2",
    )
    assert missing.returncode == 1
    assert f"http://127.0.0.1:{port}/api/dashboards/uid/nope answered HTTP 404" in missing.stdout


def test_grafana_check_fails_when_unhealthy(processes, rendered_dashboards: Path) -> None:
    port = free_port()
    processes.start(
        sys.executable,
        str(HERE / "chart_grafana_standin.py"),
        "--port",
        str(port),
        "--dashboards",
        str(rendered_dashboards),
        "--unhealthy",
        name="grafana",
    )
    wait_for_port("127.0.0.1", port)
    result = smoke("--grafana", f"http://127.0.0.1:{port}", "--timeout", "1", "--interval", "0.2")
    assert result.returncode == 1
    assert "/api/health answered HTTP 503" in result.stdout
