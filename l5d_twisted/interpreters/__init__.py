"""Interpreters: how a router binds names, chosen by ``routers[].interpreter.kind``.

* ``default``: in process, with the router's dtab and the mesh's namers
  (:class:`~l5d_twisted.naming.interpreter.Interpreter`).
* ``io.l5d.namerd.http``: namerd binds, over its HTTP API (:mod:`.namerd_http`;
  :mod:`.namerd_client` talks to namerd, :mod:`.namerd_json` reads its documents).

:func:`build_interpreter` is what the mesh calls, so the mesh names no kind; the namerd
modules (and twisted.web's client) are imported only by a config that uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.namer import Namer, Transformer
from l5d_twisted.naming.path import Path

NAMERD_HTTP = "io.l5d.namerd.http"


def build_interpreter(
    config: Any,
    namers: Mapping[Path, Namer],
    transformers: Sequence[Transformer],
    reactor: Any,
    stats: Any,
) -> tuple[Any, Callable[[], None] | None]:
    """The interpreter of one router's ``interpreter:`` block (``config``), and what closes
    it when the mesh stops (None if nothing needs closing).  ``stats`` is the router's
    scope (``rt/<router>``)."""
    if config.kind != NAMERD_HTTP:
        return Interpreter(namers, transformers, reactor), None
    from l5d_twisted.interpreters.namerd_http import NamerdHttpInterpreter

    tls = None
    if config.tls is not None:
        from l5d_twisted.http.tls import client_tls

        tls = client_tls(config.tls)  # None for enabled: false
    namerd = NamerdHttpInterpreter(
        dst=config.dst,
        namespace=config.namespace,
        locator=Interpreter(namers, (), reactor),  # only to find namerd (dst)
        reactor=reactor,
        stats=stats,
        transformers=transformers,
        base_s=config.retry.base_seconds,
        max_s=config.retry.max_seconds,
        tls=tls,
    )
    return namerd, namerd.close
