"""``l5d-twisted version``: the same as ``l5d-twisted --version``."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "version", help="print the version", description="Print the version (as --version)."
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from l5d_twisted.cli import version_text

    print(version_text())
    return 0
