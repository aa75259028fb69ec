"""``l5d-twisted dtab list|get|create|update|delete``: namerctl's commands.

The namerd is ``--base-url``, else ``$NAMERCTL_BASE_URL`` (namerctl's variable), else
http://127.0.0.1:4180.  A dtab is read from a file or stdin (``-``), as dtab text or as JSON
(namerd's list of ``{prefix, dst}``, or namerctl's ``{"version": ..., "dtab": [...]}``).  In
dtab text, lines starting with ``#`` are comments: ``get`` prints ``# version V`` above the
rules, and ``update`` of such a file writes only if the dtab is still at version ``V``
(``--version`` overrides it), so ``get > f; edit f; update NS f`` never overwrites someone
else's change.

Exit status: 0 done; 1 namerd refused (no such namespace, it exists already, or the dtab
changed since it was read); 2 bad input (usage, an unreadable file, an invalid dtab, or
namerd's 400/413); 3 namerd unreachable or answering with an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from l5d_twisted.namerd.client import (
    DEFAULT_BASE_URL,
    NamerdClient,
    NamerdError,
    NamerdRefused,
    NamerdUnreachable,
    check_base_url,
)
from l5d_twisted.namerd.codec import MAX_DTAB_BYTES, read_json
from l5d_twisted.namerd.store import namespace_problem
from l5d_twisted.naming.dtab import Dtab, DtabError

ENV_BASE_URL = "NAMERCTL_BASE_URL"
VERSION_MARK = "# version "

OK, REFUSED, BAD_INPUT, UNREACHABLE = 0, 1, 2, 3


class Failure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def add_namerd_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--base-url",
        metavar="URL",
        help=f"namerd's HTTP interface (default ${ENV_BASE_URL}, else {DEFAULT_BASE_URL})",
    )
    common.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for namerd (10)"
    )
    status = (
        "Exit status: 0 done, 1 refused by namerd (missing, exists, changed), 2 bad input, "
        "3 namerd unreachable."
    )

    listing = commands.add_parser(
        "list", parents=[common], help="list namerd's dtab namespaces", description=status
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(func=lambda args: _run(args, _list))

    get = commands.add_parser(
        "get",
        parents=[common],
        help="print a namespace's dtab from namerd, with its version",
        description="Print the dtab, one rule per line, under a '# version V' line that "
        "'update' uses to refuse overwriting a change made since. " + status,
    )
    get.add_argument("namespace", metavar="NAMESPACE", help="the dtab namespace, e.g. default")
    get.add_argument(
        "--json", action="store_true", help='print {"version": ..., "dtab": [...]} (namerctl)'
    )
    get.set_defaults(func=lambda args: _run(args, _get))

    create = commands.add_parser(
        "create", parents=[common], help="create a namespace in namerd", description=status
    )
    create.add_argument("namespace", metavar="NAMESPACE", help="the new dtab namespace")
    create.add_argument("file", metavar="FILE", help="the dtab (text or JSON); '-' reads stdin")
    create.set_defaults(func=lambda args: _run(args, _create))

    update = commands.add_parser(
        "update",
        parents=[common],
        help="replace a namespace's dtab in namerd (checking its version)",
        description="Replace the dtab.  The write happens only if the dtab is still at the "
        "version given by --version, or by the '# version V' line 'get' printed in FILE; "
        "with neither, it happens whatever the version. " + status,
    )
    update.add_argument("namespace", metavar="NAMESPACE", help="the dtab namespace")
    update.add_argument("file", metavar="FILE", help="the dtab (text or JSON); '-' reads stdin")
    update.add_argument(
        "--version",
        metavar="V",
        help="write only if the dtab is at this version (the ETag 'get' printed)",
    )
    update.set_defaults(func=lambda args: _run(args, _update))

    delete = commands.add_parser(
        "delete", parents=[common], help="delete a namespace from namerd", description=status
    )
    delete.add_argument("namespace", metavar="NAMESPACE", help="the dtab namespace")
    delete.set_defaults(func=lambda args: _run(args, _delete))


def _run(args: argparse.Namespace, command: Any) -> int:
    try:
        client = _client(args)
        namespace = getattr(args, "namespace", None)
        if namespace is not None:
            problem = namespace_problem(namespace)
            if problem is not None:
                raise Failure(BAD_INPUT, problem)
        message = command(client, args)
    except Failure as e:
        print(f"l5d-twisted dtab: error: {e.message}", file=sys.stderr)
        return e.code
    except NamerdUnreachable as e:
        print(f"l5d-twisted dtab: error: {e}", file=sys.stderr)
        return UNREACHABLE
    except NamerdRefused as e:
        code, message = _explain(e, args)
        print(f"l5d-twisted dtab: error: {message}", file=sys.stderr)
        return code
    except NamerdError as e:
        print(f"l5d-twisted dtab: error: {e}", file=sys.stderr)
        return UNREACHABLE
    if message:
        print(message, file=sys.stderr)
    return OK


def _client(args: argparse.Namespace) -> NamerdClient:
    url = args.base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    problem = check_base_url(url)
    if problem is not None:
        raise Failure(BAD_INPUT, f"--base-url: {problem}")
    if args.timeout <= 0:
        raise Failure(BAD_INPUT, "--timeout must be positive")
    return NamerdClient(url, args.timeout)


def _explain(e: NamerdRefused, args: argparse.Namespace) -> tuple[int, str]:
    ns = getattr(args, "namespace", "")
    said = f": {e.message}" if e.message else ""
    if e.status == 412:
        return REFUSED, (
            f"the dtab changed since you read it: {ns} is no longer at version "
            f"{getattr(args, 'used_version', None) or '?'}; get it again, redo your change "
            "and update with the new version"
        )
    if e.status == 404:
        return REFUSED, f"namerd has no dtab namespace {ns}"
    if e.status == 409:
        return REFUSED, f"the dtab namespace {ns} already exists (use update)"
    if e.status in (400, 413):
        return BAD_INPUT, f"namerd refused the dtab ({e.status}){said}"
    return UNREACHABLE, f"namerd answered {e.status}{said}"


# --- the commands (each returns what to print on stderr) ----------------------------------


def _list(client: NamerdClient, args: argparse.Namespace) -> str:
    names = client.list()
    if args.json:
        print(json.dumps(names))
    else:
        for name in names:
            print(name)
    return ""


def _get(client: NamerdClient, args: argparse.Namespace) -> str:
    fetched = client.get(args.namespace)
    if args.json:
        print(json.dumps({"version": fetched.version, "dtab": fetched.dentries}))
        return ""
    try:
        dtab = read_json(json.dumps(fetched.dentries))
    except ValueError as e:
        raise Failure(UNREACHABLE, f"namerd's dtab cannot be read: {e}") from None
    if fetched.version:
        print(f"{VERSION_MARK}{fetched.version}")
    sys.stdout.write(dtab.show_lines())
    return ""


def _create(client: NamerdClient, args: argparse.Namespace) -> str:
    body, content_type, _ = _read_dtab(args.file)
    version = client.create(args.namespace, body, content_type)
    return f"created {args.namespace}" + (f" (version {version})" if version else "")


def _update(client: NamerdClient, args: argparse.Namespace) -> str:
    body, content_type, file_version = _read_dtab(args.file)
    version = args.version or file_version
    args.used_version = version
    new = client.update(args.namespace, body, content_type, version)
    checked = f", was {version}" if version else ", version not checked"
    return f"updated {args.namespace}" + (f" (version {new}{checked})" if new else "")


def _delete(client: NamerdClient, args: argparse.Namespace) -> str:
    client.delete(args.namespace)
    return f"deleted {args.namespace}"


# --- reading a dtab file ----------------------------------------------------------------


def _read_dtab(name: str) -> tuple[bytes, str, str | None]:
    """``(body, content type, version found in the file)``; the dtab is checked here so a
    mistake is reported with its position before anything is sent."""
    try:
        if name == "-":
            raw = sys.stdin.buffer.read(MAX_DTAB_BYTES + 1)
        else:
            with open(name, "rb") as f:
                raw = f.read(MAX_DTAB_BYTES + 1)
    except OSError as e:
        raise Failure(BAD_INPUT, f"cannot read {name}: {e.strerror or e}") from None
    if len(raw) > MAX_DTAB_BYTES:
        raise Failure(BAD_INPUT, f"{name}: larger than {MAX_DTAB_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Failure(BAD_INPUT, f"{name}: not UTF-8 text") from None
    source = "stdin" if name == "-" else name
    if text.lstrip().startswith(("[", "{")):
        return _read_json_dtab(text, source)
    version = None
    rules = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(VERSION_MARK.strip()) and version is None:
            version = stripped[len(VERSION_MARK.strip()) :].strip() or None
        if stripped.startswith("#"):
            continue
        rules.append(line)
    cleaned = "\n".join(rules)
    try:
        Dtab.read(cleaned)
    except (DtabError, ValueError, RecursionError) as e:
        raise Failure(BAD_INPUT, f"{source}: {e}") from None
    return cleaned.encode(), "application/dtab", version


def _read_json_dtab(text: str, source: str) -> tuple[bytes, str, str | None]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise Failure(BAD_INPUT, f"{source}: invalid JSON: {e}") from None
    version = None
    if isinstance(value, dict):  # namerctl's {"version": ..., "dtab": [...]}
        version = value.get("version") or None
        value = value.get("dtab")
        if version is not None and not isinstance(version, str):
            raise Failure(BAD_INPUT, f"{source}: version must be a string")
    body = json.dumps(value)
    try:
        read_json(body)
    except ValueError as e:
        raise Failure(BAD_INPUT, f"{source}: {e}") from None
    return body.encode(), "application/json", version
