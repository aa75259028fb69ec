"""The ``l5d-twisted`` command.

Each subcommand is a module of this package with ``add_parser(subparsers)``, which adds
its parser and sets ``func`` (``func(args) -> exit code``).  Adding a subcommand is adding
a module; a command with more logic than its command line is a package (``demo``,
``smoke``) whose ``__init__`` is the command line and whose other modules do the work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence


def version_text() -> str:
    """``l5d-twisted <version>``, from the version's one place (``l5d_twisted.__version__``)."""
    from l5d_twisted import __version__

    return f"l5d-twisted {__version__}"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``command`` (the first argument) naming a subcommand's module,
    only that module is imported: ``l5d-twisted run`` starts ~30 ms sooner without the
    others (bench/README.md, "Start-up")."""
    parser = argparse.ArgumentParser(
        prog="l5d-twisted",
        description="A linkerd 1.x style service mesh proxy on the Twisted reactor.",
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="print the version and exit"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = sys.modules[__name__]
    names = sorted(i.name for i in pkgutil.iter_modules(package.__path__) if i.name[0] != "_")
    if command in names:
        names = [command]
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        add = getattr(module, "add_parser", None)
        if add is not None:
            add(subparsers)
    if command is not None and names == [command] and command not in subparsers.choices:
        return build_parser()  # the module registers another name: build them all
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments[0] if arguments else None)
    args = parser.parse_args(arguments)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`l5d-twisted check --show | head`): not an error of ours;
        # point stdout at /dev/null so the interpreter's final flush does not complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
