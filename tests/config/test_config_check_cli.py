"""``l5d-twisted check``: ok / every error, exit codes, never a traceback; the samples pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from l5d_twisted import registry
from l5d_twisted.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "examples" / "configs"

# The plugin kinds each sample needs, so a sample test skips (rather than fails) while
# another area's plugin has not landed yet.
NEEDED = {
    "minimal.yaml": {},
    "daemonset.yaml": {
        "NAMERS": ["io.l5d.k8s"],
        "TRANSFORMERS": ["io.l5d.k8s.daemonset", "io.l5d.k8s.localnode"],
        "TELEMETERS": ["io.l5d.prometheus", "io.l5d.recentRequests"],
        "CLASSIFIERS": ["io.l5d.http.retryableRead5XX"],
    },
    "fs-static.yaml": {
        "NAMERS": ["io.l5d.fs"],
        "IDENTIFIERS": ["io.l5d.path", "io.l5d.header.token"],
        "BALANCERS": ["p2c", "roundRobin"],
        "FAILURE_ACCRUAL": ["io.l5d.consecutiveFailures"],
        "BACKOFFS": ["jittered"],
        "CLASSIFIERS": ["io.l5d.http.retryableRead5XX"],
    },
}


def skip_unless_registered(sample: str) -> None:
    for registry_name, kinds in NEEDED[sample].items():
        reg = getattr(registry, registry_name)
        missing = [kind for kind in kinds if kind not in reg]
        if missing:
            pytest.skip(
                f"{sample} needs {reg.category} kinds not registered yet: {', '.join(missing)}"
            )


def test_every_sample_is_listed() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.yaml")) == sorted(NEEDED)


@pytest.mark.parametrize("sample", sorted(NEEDED))
def test_sample_configs_check_ok(
    sample: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_unless_registered(sample)
    monkeypatch.chdir(REPO)  # the samples' relative rootDirs are relative to the repository root
    assert main(["check", str(SAMPLES / sample)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == "ok\n"


def test_hello_world_config_checks_from_its_own_folder_as_its_readme_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    example = REPO / "examples" / "hello-world"
    monkeypatch.chdir(example)
    assert main(["check", "linkerd.yaml"]) == 0, capsys.readouterr().err
    monkeypatch.chdir(REPO)  # rootDir: disco is relative to the working directory
    assert main(["check", str(example / "linkerd.yaml")]) == 2
    assert "namers[0]: rootDir: 'disco' is not a directory" in capsys.readouterr().err


def test_reference_daemonset_sample_has_the_documented_shape() -> None:
    skip_unless_registered("daemonset.yaml")
    from l5d_twisted.config import load_config_file

    config = load_config_file(SAMPLES / "daemonset.yaml")
    outgoing, incoming = config.routers
    assert (outgoing.label, outgoing.servers[0].port, incoming.label, incoming.servers[0].port) == (
        "outgoing",
        4140,
        "incoming",
        4141,
    )
    assert [t.kind for t in outgoing.interpreter.transformers] == ["io.l5d.k8s.daemonset"]
    assert [t.kind for t in incoming.interpreter.transformers] == ["io.l5d.k8s.localnode"]
    assert (
        outgoing.dtab.show()
        == "/srv => /#/io.l5d.k8s/default/http;/host => /srv;/svc => /host;/host/world => /srv/world-v1"
    )
    assert (config.admin.ip, config.admin.port) == ("0.0.0.0", 9990)


def test_check_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routers:\n- servers: [{port: x}]\n  lable: a\n")
    assert main(["check", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f'{bad}:2: routers[0].servers[0].port: expected an integer 0-65535, got "x"',
        f"{bad}:3: routers[0].lable: unknown key 'lable' (did you mean 'label'?); known keys: "
        "protocol, label, servers, dtab, dstPrefix, identifier, interpreter, client, service, bindingTimeoutMs, "
        "bindingCache, maxHeadersKB, maxInitialLineKB, maxRequestKB, streamingEnabled, experimental, "
        "maxCallDepth, httpAccessLog, httpAccessLogRollPolicy, httpAccessLogAppend, "
        "httpAccessLogRotateCount, compressionLevel, originator, streamAfterContentLengthKB, "
        "maxMetricScopes",
        "2 problems found",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read config file: No such file or directory"),
        (b"\xff\xfe garbage", "cannot read config file: 'utf-8' codec can't decode"),
        (b"routers: [\n", "not valid YAML"),
        (b"- 1\n- 2\n", "expected a mapping of top-level keys"),
        (b"", "the config is empty"),
    ],
)
def test_unreadable_inputs_are_clean_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_bytes(content)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_directory_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path)]) == 2
    assert "cannot read config file: Is a directory" in capsys.readouterr().err


def test_show_prints_the_effective_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("routers:\n- label: out\n  dtab: /svc => /$/inet/127.0.0.1/8080\n")
    assert main(["check", "--show", str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["routers"][0]["label"] == "out"
    [server] = shown["routers"][0]["servers"]
    expected = {
        "port": 4140,
        "ip": "127.0.0.1",
        "clearContext": False,
        "maxConcurrentRequests": None,
        "tls": None,
    }
    expected.update(
        {
            "maxConnections": 10000,
            "requestBodyIdleTimeoutMs": 30000,
            "minRequestBodyBytesPerSec": 240,
        }
    )
    assert {k: server.get(k) for k in expected} == expected  # other keys are other tests' business
    assert shown["admin"]["port"] == 9990


def test_real_command_from_stdin_exit_codes_and_no_traceback() -> None:
    def run(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "l5d_twisted", "check", "-"],
            input=text,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )

    good = run("routers:\n- protocol: http\n")
    assert (good.returncode, good.stdout) == (0, "ok\n")
    bad = run("routers:\n- protocol: gopher\n")
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "<stdin>:2: routers[0].protocol: unknown protocol 'gopher'; known protocols: http"
    )
    assert "Traceback" not in bad.stderr
