"""TLS support in the process only when the config uses TLS.

With pyOpenSSL installed (``twisted[tls]``), Twisted imports it, cryptography and
service_identity as soon as the reactor is imported, whatever the config says:
``twisted.internet.tcp`` for ``startTLS`` on every TCP transport, the reactor base for
``listenSSL``/``connectSSL``, ``twisted.internet.endpoints`` for its TLS endpoints.  That is
~12 MB of a ~40 MB proxy (bench/README.md, "Memory").  ``l5d-twisted run`` reads its config
before it imports the reactor; when nothing in it speaks TLS, :func:`leave_out_tls` makes
those imports fail, and Twisted runs as it does without the ``tls`` extra installed (plain
TCP transports, no TLS endpoints).  The mesh's own TLS code (``http.tls``) imports them
inside its functions, which such a config never calls.

What needs TLS (:func:`config_uses_tls`): a ``tls`` block anywhere in the config (servers,
clients, per-prefix client configs) and the Kubernetes plugins (``io.l5d.k8s*``), whose
API is HTTPS inside a cluster.  :func:`leave_out_http2` (called before the config is even
read) keeps twisted.web's HTTP/2 out of every ``run``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

from l5d_twisted.config.tls import ClientTlsConfig, ServerTlsConfig

# Blocking the top-level packages suffices (Twisted's TLS modules import them); Twisted's
# own modules are listed too, so that none of them is left half-imported.
TLS_MODULES = (
    "OpenSSL",
    "cryptography",
    "service_identity",
    "twisted.internet._newtls",
    "twisted.internet._sslverify",
    "twisted.internet.ssl",
    "twisted.protocols.tls",
)

# twisted.web's HTTP/2 (h2, hpack, hyperframe, priority: ~1.5 MB), which it only ever
# negotiates over TLS (ALPN): l5d-twisted's one twisted.web server, the admin server, has no
# TLS, and the routers serve HTTP with their own server.
HTTP2_MODULES = ("h2", "twisted.web._http2")

TLS_PLUGIN_PREFIX = "io.l5d.k8s"  # the Kubernetes namer and transformers call an HTTPS API


def config_uses_tls(config: Any) -> bool:
    """Whether anything in ``config`` (a decoded ``Config``) may open or accept TLS."""
    seen: set[int] = set()

    def walk(value: Any) -> bool:
        if isinstance(value, ClientTlsConfig | ServerTlsConfig):
            return bool(getattr(value, "enabled", True))  # `enabled: false` is plain TCP
        if isinstance(value, str | bytes | int | float | type(None)):
            return False
        if id(value) in seen:
            return False
        seen.add(id(value))
        kind = getattr(value, "kind", None)
        if isinstance(kind, str) and kind.startswith(TLS_PLUGIN_PREFIX):
            return True
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return any(walk(getattr(value, f.name)) for f in dataclasses.fields(value))
        if isinstance(value, Mapping):
            return any(walk(k) or walk(v) for k, v in value.items())
        if isinstance(value, tuple | list | set | frozenset):
            return any(walk(v) for v in value)
        return False

    return walk(config)


def leave_out_tls() -> bool:
    """Make every later import of a TLS module fail, so Twisted runs without TLS support.

    Call it before the reactor is imported.  Returns False, changing nothing, when TLS is
    already imported (a test process, a caller that used TLS before).
    """
    if any(sys.modules.get(name) is not None for name in TLS_MODULES):
        return False
    for name in TLS_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # Python's "import fails" marker
    return True


def leave_out_http2() -> bool:
    """Make twisted.web run without HTTP/2 (before twisted.web is imported; False if it was)."""
    if "twisted.web.http" in sys.modules or any(
        sys.modules.get(name) is not None for name in HTTP2_MODULES
    ):
        return False
    for name in HTTP2_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]
    return True


def leave_out_tls_unless_used(config: Any) -> bool:
    """:func:`leave_out_tls` when ``config`` has no TLS; whether TLS was left out."""
    return not config_uses_tls(config) and leave_out_tls()
