"""``l5d-twisted check CONFIG``: validate a config without running it.

Prints ``ok`` and exits 0, or prints every problem (``file:line: key.path: message``) to
stderr and exits 2.  ``-`` reads the config from stdin; ``--show`` prints the config as
the proxy would run it (defaults filled in) as JSON; ``--reference`` prints every key of
the model and of every registered plugin kind, as Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a config file",
        description="Validate a config file: prints ok, or every problem with its line.",
    )
    parser.add_argument(
        "config", metavar="CONFIG", nargs="?", help="the YAML config file ('-' for stdin)"
    )
    parser.add_argument(
        "--show",
        action="store_true",
        help="print the effective config (defaults filled in) as JSON",
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="print every config key of every plugin kind (Markdown) and exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from l5d_twisted.config import ConfigErrors, config_json, load_config, load_config_file

    if args.reference:
        from l5d_twisted.config.reference import render_reference

        print(render_reference(), end="")
        return 0
    if args.config is None:
        print("l5d-twisted check: a CONFIG file is required (or --reference)", file=sys.stderr)
        return 2
    try:
        stdin = args.config == "-"
        config = (
            load_config(sys.stdin.read(), "<stdin>") if stdin else load_config_file(args.config)
        )
    except ConfigErrors as e:
        count = len(e.errors)
        print(str(e), file=sys.stderr)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 2
    if args.show:
        print(json.dumps(config_json(config), indent=2))
    else:
        print("ok")
    return 0
