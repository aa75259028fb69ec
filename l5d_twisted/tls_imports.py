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

Python's own bindings to OpenSSL are left out too when the config file names no TLS
(:func:`leave_out_openssl_unless_named`): ``ssl`` (``_ssl``: libssl) and ``_hashlib``
(libcrypto), ~5 MB of RSS together.  Twisted's ``defer`` imports ``asyncio``, which imports
``ssl``, and its ``failure`` module ``http.cookiejar`` -> ``urllib.request`` -> ``hashlib``;
all of them tolerate a Python built without OpenSSL (``asyncio``, ``http.client`` and
``urllib.request`` then offer no TLS, which the mesh never asks of them; ``hashlib`` and
``hmac`` use CPython's built-in md5, sha*, blake2 and sha3).  Twisted is imported while the
config is decoded (its protocols' types), before :func:`config_uses_tls` can be asked, so
this decision reads the file's YAML first and is conservative: any ``tls`` key anywhere (an
``enabled: false`` one too) or an ``io.l5d.k8s*`` kind keeps them.  Should a decoded config
still need TLS, :func:`leave_out_tls_unless_used` takes the block back.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

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

# Python's OpenSSL bindings: libssl (``ssl``) and libcrypto (``_hashlib``; cryptography
# carries its own).  Left out before Twisted is imported, or not at all.
OPENSSL_STDLIB_MODULES = ("ssl", "_ssl", "_hashlib")
_OPENSSL_USERS = ("hashlib", "hmac", "asyncio", "http.client", "urllib.request")

TLS_PLUGIN_PREFIX = "io.l5d.k8s"  # the Kubernetes namer and transformers call an HTTPS API


def config_uses_tls(config: Any) -> bool:
    """Whether anything in ``config`` (a decoded ``Config``) may open or accept TLS."""
    from l5d_twisted.config.tls import ClientTlsConfig, ServerTlsConfig  # not with this module:
    # run imports it before the config package (and yaml, see leave_out_libyaml)

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


# PyYAML's libyaml binding: ``import yaml`` loads it whenever it is installed, the config
# reader never uses it (its line-remembering composer is PyYAML's Python one), ~250 KB.
LIBYAML_MODULES = ("yaml._yaml", "_yaml")


def leave_out_libyaml() -> bool:
    """Make PyYAML run as without libyaml (before yaml is imported; False if it was)."""
    if "yaml" in sys.modules or any(sys.modules.get(name) is not None for name in LIBYAML_MODULES):
        return False
    for name in LIBYAML_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]
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


def text_may_use_tls(text: str) -> bool:
    """Whether a config file's YAML may ask for TLS: a ``tls`` key anywhere or an
    ``io.l5d.k8s*`` kind (True too when the text is not YAML the safe loader reads)."""
    import yaml

    try:
        root = yaml.safe_load(text)
    except Exception:
        return True
    seen: set[int] = set()

    def walk(value: Any) -> bool:
        if id(value) in seen:
            return False
        seen.add(id(value))
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "tls":
                    return True
                if key == "kind" and isinstance(item, str) and item.startswith(TLS_PLUGIN_PREFIX):
                    return True
                if walk(item):
                    return True
            return False
        if isinstance(value, list):
            return any(walk(item) for item in value)
        return False

    return walk(root)


def leave_out_openssl() -> bool:
    """Make ``ssl`` and ``_hashlib`` unimportable, as in a Python built without OpenSSL.

    Call it before Twisted is imported.  Returns False, changing nothing, when they or a
    module that would have used them is already imported (a test process).
    """
    if any(sys.modules.get(name) is not None for name in OPENSSL_STDLIB_MODULES + _OPENSSL_USERS):
        return False
    for name in OPENSSL_STDLIB_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]
    return True


def openssl_left_out() -> bool:
    return any(name in sys.modules and sys.modules[name] is None for name in OPENSSL_STDLIB_MODULES)


def take_back_openssl() -> None:
    """Undo :func:`leave_out_openssl` (modules imported meanwhile keep running without it)."""
    for name in OPENSSL_STDLIB_MODULES:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


def leave_out_openssl_unless_named(path: str) -> bool:
    """:func:`leave_out_openssl` when the config file at ``path`` names no TLS (nothing
    when it cannot be read: the config loader says why); whether they were left out."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    return not text_may_use_tls(text) and leave_out_openssl()


def leave_out_tls_unless_used(config: Any) -> bool:
    """:func:`leave_out_tls` when ``config`` has no TLS; whether TLS was left out."""
    if config_uses_tls(config):
        if openssl_left_out():  # not expected: text_may_use_tls() is the broader rule
            take_back_openssl()
        return False
    return leave_out_tls()
