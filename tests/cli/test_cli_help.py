"""The command line itself: --version, and help text on every flag (issue 16 point 7)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import l5d_twisted
from l5d_twisted.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def parsers(
    parser: argparse.ArgumentParser, path: str = "l5d-twisted"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line, depth first, with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


# Internal flags hidden from --help on purpose (help=argparse.SUPPRESS), each with its reason.
HIDDEN = {
    "l5d-twisted run --worker-fd",  # how a `workers: N` supervisor starts each worker
}


def test_every_option_and_subcommand_has_help_text() -> None:
    missing = []
    hidden = set()
    seen = 0
    for path, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                missing += [f"{path} {name}" for name in action.choices if not helps.get(name)]
                continue
            seen += 1
            name = f"{path} {'/'.join(action.option_strings) or action.dest}"
            if action.help == argparse.SUPPRESS:
                hidden.add(name)
            elif not action.help or not action.help.strip():
                missing.append(name)
    assert not missing, f"without help text: {missing}"
    assert hidden <= HIDDEN, f"hidden from --help without a reason in HIDDEN: {hidden - HIDDEN}"
    assert seen > 40  # the walk reached the subcommands' options


def test_the_walk_finds_every_subcommand() -> None:
    paths = {path for path, _ in parsers(build_parser())}
    assert {
        "l5d-twisted run",
        "l5d-twisted check",
        "l5d-twisted demo",
        "l5d-twisted demo stop",
        "l5d-twisted demo start",
        "l5d-twisted demo status",
        "l5d-twisted dtab show",
        "l5d-twisted example world",
        "l5d-twisted version",
    } <= paths


def test_version_flag_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"l5d-twisted {l5d_twisted.__version__}\n"
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"l5d-twisted {l5d_twisted.__version__}\n"


def test_the_version_has_one_place() -> None:
    """setup.py, the image build and its test read l5d_twisted/__init__.py."""
    assert re.fullmatch(r"\d+\.\d+\.\d+", l5d_twisted.__version__)
    for path in ("setup.py", "scripts/build-image.sh", "tests/image/image_podman.py"):
        text = (REPO / path).read_text()
        assert "__version__" in text, path
        assert l5d_twisted.__version__ not in text, path
    out = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip().splitlines()[-1] == l5d_twisted.__version__, out.stderr


def test_version_as_a_process() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert (out.returncode, out.stdout) == (0, f"l5d-twisted {l5d_twisted.__version__}\n")
