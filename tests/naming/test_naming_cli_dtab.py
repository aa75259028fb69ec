"""``l5d-twisted dtab resolve`` as a user runs it (real subprocesses over an fs namer for the
main cases; the rest in-process on the test reactor, which is faster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from l5d_twisted.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "dtab", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


async def resolve_in_process(*args: str) -> tuple[int, str]:
    from l5d_twisted.cli.dtab import resolve

    parsed = build_parser().parse_args(["dtab", "resolve", *args])
    code, output = await resolve(parsed, reactor)
    return code, output


def disco(tmp_path: Path) -> Path:
    root = tmp_path / "disco"
    root.mkdir()
    (root / "hello").write_text("127.0.0.1 7777\n")
    (root / "world").write_text("# two pods\n127.0.0.1 7778\n127.0.0.1 7779 * 3\n")
    (root / "empty").write_text("")
    return root


def test_weighted_union_shows_weights_and_exits_0(tmp_path: Path) -> None:
    root = disco(tmp_path)
    out = run(
        "resolve",
        "--namer-fs",
        str(root),
        "--dtab",
        "/svc => /#/io.l5d.fs; /svc/both => 0.8 * /svc/hello & 0.2 * /svc/world",
        "/svc/both",
    )
    assert out.returncode == 0, out.stderr
    assert "[0.8 *] /svc/hello" in out.stdout and "[0.2 *] /svc/world" in out.stdout
    assert "80% /#/io.l5d.fs/hello: 127.0.0.1:7777" in out.stdout
    assert "20% /#/io.l5d.fs/world: 127.0.0.1:7778, 127.0.0.1:7779 * 3" in out.stdout
    assert "=> 3 addresses" in out.stdout


def test_fall_through_is_shown_and_bare_names_use_svc(tmp_path: Path) -> None:
    root = disco(tmp_path)
    out = run(
        "resolve",
        "--namer-fs",
        str(root),
        "--dtab",
        "/svc => /#/io.l5d.fs; /svc/world => /#/io.l5d.fs/world-v2",
        "world",
    )
    assert out.returncode == 0, out.stderr
    assert "/#/io.l5d.fs/world-v2  [/svc/world => /#/io.l5d.fs/world-v2] -> neg" in out.stdout
    assert (
        "[2 chosen] /#/io.l5d.fs/world  [/svc => /#/io.l5d.fs] -> bound: 127.0.0.1:7778"
        in out.stdout
    )


def test_failure_exits_1(tmp_path: Path) -> None:
    root = disco(tmp_path)
    stop = run(
        "resolve",
        "--namer-fs",
        str(root),
        "--dtab",
        "/svc => /#/io.l5d.fs; /svc/stop => ! | /svc/hello",
        "/svc/stop",
    )
    assert stop.returncode == 1 and "=> fail" in stop.stdout
    assert "├─ [1 chosen] alternatives  [/svc/stop => ! | /svc/hello]" in stop.stdout
    assert "│  ├─ [1 chosen] ! -> fail" in stop.stdout


@pytest_twisted.ensureDeferred
async def test_neg_and_empty_exit_1(tmp_path: Path) -> None:
    root = disco(tmp_path)
    base = "/svc => /#/io.l5d.fs"
    code, output = await resolve_in_process("--namer-fs", str(root), "--dtab", base, "/svc/nobody")
    assert code == 1 and "=> neg" in output
    code, output = await resolve_in_process(
        "--namer-fs", str(root), "--dtab", base, "--json", "/svc/empty"
    )
    assert code == 1
    data = json.loads(output)
    assert data["result"]["type"] == "leaf" and data["result"]["addresses"] == []
    assert data["delegate"]["bound"]["addr"] == {"type": "bound", "addrs": []}


@pytest_twisted.ensureDeferred
async def test_config_router_dtab_and_namers(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    disco(tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative rootDir is relative to the working directory
    config = tmp_path / "l5d.yaml"
    config.write_text(
        """
namers:
- kind: io.l5d.fs
  rootDir: disco
- kind: io.l5d.memory
  prefix: /mem
  names:
    hello: ["127.0.0.5:1"]
routers:
- protocol: http
  label: outgoing
  dtab: /svc => /#/io.l5d.fs;
  servers: [{port: 4140}]
- protocol: http
  label: incoming
  dtab: /svc => /#/mem
  servers: [{port: 4141}]
"""
    )
    code, output = await resolve_in_process("--config", str(config), "--json", "hello")
    assert code == 0, output
    assert json.loads(output)["result"]["addresses"] == ["127.0.0.1:7777"]
    code, output = await resolve_in_process(
        "--config", str(config), "--router", "incoming", "hello"
    )
    assert code == 0 and "/#/mem/hello: 127.0.0.5:1" in output
    code, output = await resolve_in_process(
        "--config", str(config), "--dtab", "/svc/hello => /#/io.l5d.fs/world", "hello"
    )
    assert code == 0 and "127.0.0.1:7779 * 3" in output
    assert main(["dtab", "resolve", "--config", str(config), "--router", "nope", "hello"]) == 2
    err = capsys.readouterr().err
    assert "no router labelled 'nope'" in err and "(routers: outgoing, incoming)" in err


def test_bad_dtab_exits_2_with_a_clean_message() -> None:
    bad_dtab = run("resolve", "--dtab", "/svc /foo", "/svc/x")
    assert bad_dtab.returncode == 2
    assert (
        bad_dtab.stderr.strip()
        == "l5d-twisted dtab: error: dtab: expected '=>' after the prefix, found '/' at offset 5: \"/svc /foo\""
    )


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/svc/a b"], "PATH:"),
        (["--config", "{tmp}/missing.yaml", "x"], "invalid config"),
        (["--config", "CONFIG:routers: [{protocol: gopher}]", "x"], "invalid config"),
        (["--namer-fs", "{tmp}/nope", "x"], "is not a directory"),
        (["--router", "a", "x"], "--router needs --config"),
        (["--timeout", "0", "x"], "--timeout must be positive"),
        (
            ["--namer-fs", "{tmp}", "--namer-fs-prefix", "io.l5d.fs", "x"],
            "--namer-fs-prefix: path must start with '/'",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clean_message(
    tmp_path: Path, capsys: Any, args: list[str], message: str
) -> None:
    args = [
        _config(tmp_path, a[len("CONFIG:") :])
        if a.startswith("CONFIG:")
        else a.replace("{tmp}", str(tmp_path))
        for a in args
    ]
    assert main(["dtab", "resolve", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("l5d-twisted dtab: error: ") and message in err and "Traceback" not in err


def test_show_prints_one_rule_per_line(capsys: Any) -> None:
    assert main(["dtab", "show", "/a=>/b;/c=>0.5*/d&0.5*/e|~"]) == 0
    assert capsys.readouterr().out == "/a => /b;\n/c => 0.5 * /d & 0.5 * /e | ~;\n"
    assert main(["dtab", "show", "/a=>"]) == 2
    assert "expected a name" in capsys.readouterr().err


@pytest_twisted.ensureDeferred
async def test_a_dtab_of_several_rules_is_printed_one_rule_per_line(tmp_path: Path) -> None:
    root = disco(tmp_path)
    code, output = await resolve_in_process(
        "--namer-fs", str(root), "--dtab", "/srv => /#/io.l5d.fs; /svc => /srv", "hello"
    )
    assert code == 0, output
    assert output.startswith(
        "dtab (later rules win):\n  /srv => /#/io.l5d.fs;\n  /svc => /srv;\n/svc/hello\n"
    )
    code, output = await resolve_in_process(
        "--namer-fs", str(root), "--dtab", "/svc => /#/io.l5d.fs", "hello"
    )
    assert output.startswith("dtab: /svc => /#/io.l5d.fs\n/svc/hello\n")
