"""``l5d-twisted dtab``: try dtabs from the command line.

``l5d-twisted dtab resolve [--config FILE [--router LABEL]] [--namer-fs DIR] [--dtab TEXT]
[--json] [--timeout S] PATH`` binds PATH (``/svc/hello``, or just ``hello`` for the router's
``dstPrefix``) with the config's namers, the router's dtab and transformers, plus any
``--dtab`` rules (later rules win), waits a bounded time for namers to answer, and prints
the explanation tree.  Exit status: 0 resolved to addresses, 1 neg/fail/empty/pending,
2 bad input.

``l5d-twisted dtab show TEXT`` parses a dtab and prints it one rule per line.

Against a namerd, in the style of namerctl (``--base-url``, else ``$NAMERCTL_BASE_URL``, else
http://127.0.0.1:4180): ``dtab list``, ``dtab get NS``, ``dtab create NS FILE|-``,
``dtab update [--version V] NS FILE|-``, ``dtab delete NS`` (the work is in
:mod:`l5d_twisted.namerd.ctl`).  ``get`` prints a ``# version V`` line above the rules;
``update`` of a file that has one writes only if the dtab is still at that version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from l5d_twisted.naming.dtab import Dtab, DtabError
from l5d_twisted.naming.path import Path, PathError


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dtab", help="resolve names with dtabs; read and write the dtabs of a namerd"
    )
    commands = parser.add_subparsers(dest="dtab_command", metavar="SUBCOMMAND")

    resolve = commands.add_parser(
        "resolve",
        help="bind a name and print how each rule and namer resolved it",
        description="Bind PATH with a dtab and print the explanation tree. "
        "Exit status: 0 resolved to addresses, 1 neg/fail/empty/pending, 2 bad input "
        "(also a dtab that makes binding exceed its limits of work, nesting or union width).",
    )
    resolve.add_argument(
        "path",
        metavar="PATH",
        help="the name, e.g. /svc/hello (or hello, under the router's dstPrefix)",
    )
    resolve.add_argument(
        "--dtab", default="", help="dtab rules added after the router's (they win)"
    )
    resolve.add_argument(
        "--config",
        metavar="FILE",
        help="use this config's namers, and a router's dtab and transformers",
    )
    resolve.add_argument(
        "--router", metavar="LABEL", help="which router of --config (default: the first)"
    )
    resolve.add_argument("--namer-fs", metavar="DIR", help="add an io.l5d.fs namer over DIR")
    resolve.add_argument(
        "--namer-fs-prefix",
        metavar="PREFIX",
        default="/io.l5d.fs",
        help="prefix of the --namer-fs namer (default /io.l5d.fs)",
    )
    resolve.add_argument("--json", action="store_true", help="print linkerd-style delegator JSON")
    resolve.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="how long to wait for namers (default 5 s)",
    )
    resolve.set_defaults(func=run_resolve)

    show = commands.add_parser("show", help="parse a dtab and print it one rule per line")
    show.add_argument("text", metavar="DTAB", help="the dtab, e.g. '/svc => /#/io.l5d.fs;'")
    show.set_defaults(func=run_show)

    from l5d_twisted.namerd.ctl import add_namerd_commands

    add_namerd_commands(commands)

    parser.set_defaults(func=lambda args: _help(parser))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _fail(message: str) -> int:
    print(f"l5d-twisted dtab: error: {message}", file=sys.stderr)
    return 2


def run_show(args: argparse.Namespace) -> int:
    try:
        dtab = Dtab.read(args.text)
    except DtabError as e:
        return _fail(str(e))
    sys.stdout.write(dtab.show_lines())
    return 0


@dataclass
class _Setup:
    interpreter: Any
    dtab: Dtab
    path: Path


def run_resolve(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    try:
        resolving = resolve(args, reactor)
    except UsageError as e:
        return _fail(str(e))
    outcome: list[Any] = []

    def done(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    reactor.callWhenRunning(lambda: resolving.addBoth(done))
    reactor.run(installSignalHandlers=False)
    result: Any = outcome[0] if outcome else None
    if not isinstance(result, tuple):
        message = result.getErrorMessage() if hasattr(result, "getErrorMessage") else repr(result)
        print(f"l5d-twisted dtab: error: resolving failed: {message}", file=sys.stderr)
        return 1
    code, output = result
    sys.stdout.write(output)
    return int(code)


def resolve(args: argparse.Namespace, reactor: Any) -> Deferred[tuple[int, str]]:
    """Bind and explain as ``dtab resolve`` does: ``(exit status, output)``.

    Raises :class:`UsageError` at once for bad input; runs on the given (running) reactor.
    """
    from l5d_twisted.naming.explanation import Explanation, explain_settled
    from l5d_twisted.naming.limits import BindingLimitError
    from l5d_twisted.naming.var import Failed

    setup = _prepare(args, reactor)

    def render(explanation: Explanation) -> tuple[int, str]:
        if args.json:
            output = json.dumps(explanation.to_json(), indent=2) + "\n"
        else:
            output = _show_dtab(setup.dtab) + explanation.to_text()
        state = explanation.state
        if isinstance(state, Failed) and isinstance(state.error, BindingLimitError):
            return 2, output  # the explanation's last line says which limit
        return (0 if explanation.resolved else 1), output

    return explain_settled(
        setup.interpreter, setup.dtab, setup.path, reactor, args.timeout
    ).addCallback(render)


def _show_dtab(dtab: Dtab) -> str:
    """The dtab above the tree: one rule per line once there are several, because a whole
    router dtab on one line is hard to match against the rules the tree names."""
    if len(dtab) <= 1:
        return f"dtab: {dtab.show() or '(empty)'}\n"
    return "dtab (later rules win):\n" + "".join(f"  {rule.show()};\n" for rule in dtab)


def _prepare(args: argparse.Namespace, reactor: Any) -> _Setup:
    from l5d_twisted.context import PluginContext
    from l5d_twisted.namers.fs import FsNamer
    from l5d_twisted.naming.interpreter import Interpreter
    from l5d_twisted.registry import TRANSFORMERS, UnknownKind, load_plugins
    from l5d_twisted.transformers.namer import make_namer

    try:
        extra = Dtab.read(args.dtab)
    except DtabError as e:
        raise UsageError(str(e)) from None
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    namers: dict[Path, Any] = {}
    transformers: list[Any] = []
    base = Dtab.empty()
    dst_prefix = Path.of("svc")
    if args.router and not args.config:
        raise UsageError("--router needs --config")
    if args.config:
        load_plugins()
        router, config = _load_router(args.config, args.router)
        ctx = PluginContext(
            reactor=reactor,
            config_dir=getattr(config, "source_dir", os.path.dirname(os.path.abspath(args.config))),
        )
        try:
            for spec in config.namers:
                # with its own transformers (namers[].transformers), as the mesh does
                namer, _own = make_namer(spec, ctx)
                namers[spec.prefix] = namer
                ctx.namers[spec.prefix.show()] = namer
            transformers = [
                TRANSFORMERS.get(spec.kind).factory(spec.config, ctx)
                for spec in router.interpreter.transformers
            ]
        except (UnknownKind, ValueError, OSError) as e:
            raise UsageError(f"{args.config}: {e}") from None
        base = router.dtab
        dst_prefix = router.dst_prefix
    if args.namer_fs:
        if not os.path.isdir(args.namer_fs):
            raise UsageError(f"--namer-fs: {args.namer_fs} is not a directory")
        try:
            prefix = Path.read(args.namer_fs_prefix)
        except PathError as e:
            raise UsageError(f"--namer-fs-prefix: {e}") from None
        namers[prefix] = FsNamer(os.path.abspath(args.namer_fs), prefix, reactor)
    return _Setup(
        Interpreter(namers, transformers, reactor), base + extra, _target(args.path, dst_prefix)
    )


def _target(text: str, dst_prefix: Path) -> Path:
    try:
        if text.startswith("/"):
            return Path.read(text)
        return dst_prefix + Path.read("/" + text)
    except PathError as e:
        raise UsageError(f"PATH: {e}") from None


def _load_router(config_path: str, label: str | None) -> tuple[Any, Any]:
    try:
        from l5d_twisted.config import ConfigErrors, load_config_file
    except ImportError as e:  # pragma: no cover - the config package is part of the tree
        raise UsageError(f"--config is not available: {e}") from None
    try:
        config = load_config_file(config_path)
    except ConfigErrors as e:
        raise UsageError(f"invalid config:\n{e}") from None
    except OSError as e:
        raise UsageError(f"cannot read config {config_path}: {e.strerror or e}") from None
    routers = list(config.routers)
    if label is None:
        return routers[0], config
    for router in routers:
        if router.label == label:
            return router, config
    known = ", ".join(r.label for r in routers)
    raise UsageError(f"no router labelled {label!r} in {config_path} (routers: {known})")
