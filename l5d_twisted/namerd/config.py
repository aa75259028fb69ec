"""namerd's config: ``storage``, ``namers``, ``interfaces``, ``admin``.

Decoded with the project's decoder (``config.decode``), so every problem of a file is
reported at once with its key path and line, and ``namers`` are read exactly as a mesh
config's are.  Storage kinds: ``io.l5d.inMemory`` and ``io.l5d.k8s`` (namerd/k8s_store.py).
linkerd 1 kinds this project does not build yet are refused by name:
storage ``io.l5d.zk``, ``io.l5d.etcd``, ``io.l5d.consul``; interfaces
``io.l5d.thriftNameInterpreter``, ``io.l5d.mesh``, ``io.l5d.destination``; and the keys
``telemetry``, an interface's ``tls`` and ``socketOptions``, a namer's ``transformers``.

Defaults as namerd's: the HTTP controller on 127.0.0.1:4180, the admin server on
127.0.0.1:9991.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any

from yaml.nodes import Node, SequenceNode

from l5d_twisted.config.decode import INVALID, Decoder
from l5d_twisted.config.decoders import TYPE_DECODERS
from l5d_twisted.config.errors import ConfigError, ConfigErrors
from l5d_twisted.config.model import MAX_PORT, AdminConfig, NamerSpec, check_ip
from l5d_twisted.config.schema import knob
from l5d_twisted.config.yamldoc import is_null, parse
from l5d_twisted.namerd.store import MAX_NAMESPACES, namespace_problem
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.registry import load_plugins

IN_MEMORY = "io.l5d.inMemory"
K8S = "io.l5d.k8s"
# namerd's later name for the same storage over a CustomResourceDefinition: one code here.
K8S_V2 = "io.l5d.v2.k8s"
HTTP_CONTROLLER = "io.l5d.httpController"
DEFAULT_ADMIN_PORT = 9991

# linkerd 1 kinds refused by name: kind -> the feature not built yet.
REFUSED_STORAGE = {
    "io.l5d.zk": "namerd's ZooKeeper dtab storage",
    "io.l5d.etcd": "namerd's etcd dtab storage",
    "io.l5d.consul": "namerd's Consul dtab storage",
}
REFUSED_INTERFACES = {
    "io.l5d.thriftNameInterpreter": "namerd's thrift name interpreter interface",
    "io.l5d.mesh": "namerd's gRPC mesh interface",
    "io.l5d.destination": "namerd's linkerd 2 destination interface",
}
REFUSED_KEYS = {
    "telemetry": "namerd telemeters",
    "tls": "TLS on namerd's interfaces",
    "socketOptions": "socket options of namerd's interfaces",
}
IGNORED_TOP_LEVEL = frozenset({"usage"})


def refusal(name: str, feature: str) -> str:
    return f"{name} is linkerd 1 configuration that l5d-twisted does not support yet ({feature})"


@dataclass(frozen=True)
class InMemoryStorage:
    """``io.l5d.inMemory``: dtabs kept in the namerd process (lost when it stops)."""

    namespaces: dict[str, Dtab] = knob(
        default_factory=dict, doc="initial dtabs by namespace (each a dtab text)"
    )
    experimental: bool = knob(False, doc="linkerd 1's switch for experimental storage (accepted)")


@dataclass(frozen=True)
class K8sStorage:
    """``io.l5d.k8s``: dtabs kept as DTab custom resources (group l5d.io) in Kubernetes."""

    host: str | None = knob(
        None,
        doc="API host (a kubectl proxy); unset: in-cluster service account if present, else localhost",
    )
    port: int | None = knob(
        None, doc="API port (default 8001, a kubectl proxy)", minimum=1, maximum=MAX_PORT
    )
    namespace: str = knob("default", doc="the Kubernetes namespace holding the DTab objects")
    namespaces: dict[str, Dtab] = knob(
        default_factory=dict,
        doc="dtabs created at start when absent (never overwriting one that exists)",
    )
    request_timeout_ms: int = knob(
        10000, doc="timeout of API calls and of a watch's first answer", minimum=1
    )
    watch_timeout_secs: int = knob(
        300, doc="server-side timeout of each watch call; it is then resumed", minimum=1
    )
    experimental: bool = knob(False, doc="linkerd 1's switch for experimental storage (accepted)")


@dataclass(frozen=True)
class HttpControllerConfig:
    """``io.l5d.httpController``: the HTTP API for dtabs and names (docs/namerd.md)."""

    ip: str = knob("127.0.0.1", validator=check_ip, doc="address to listen on")
    port: int = knob(4180, minimum=0, maximum=MAX_PORT, doc="port (0: any free port)")


@dataclass(frozen=True)
class StorageSpec:
    kind: str
    config: Any


@dataclass(frozen=True)
class InterfaceSpec:
    kind: str
    config: Any


@dataclass(frozen=True, kw_only=True)
class NamerdConfig:
    storage: StorageSpec
    namers: tuple[NamerSpec, ...] = ()
    interfaces: tuple[InterfaceSpec, ...]
    admin: AdminConfig = dataclasses.field(
        default_factory=lambda: AdminConfig(port=DEFAULT_ADMIN_PORT)
    )
    source_dir: str = "."


def load_namerd_config_file(path: str) -> NamerdConfig:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigErrors(
            [ConfigError("", None, f"cannot read config file: {reason}", path)]
        ) from None
    return load_namerd_config(text, path, os.path.dirname(os.path.abspath(path)))


def load_namerd_config(
    text: str, source: str = "<config>", source_dir: str | None = None
) -> NamerdConfig:
    """Decode a namerd config; raises :class:`ConfigErrors` listing every problem."""
    try:
        return _load(text, source, source_dir or os.getcwd())
    except ConfigErrors:
        raise
    except Exception as e:  # a bug: still a clean report
        message = f"internal error while reading the config: {type(e).__name__}: {e}"
        raise ConfigErrors([ConfigError("", None, message, source)]) from e


def _load(text: str, source: str, source_dir: str) -> NamerdConfig:
    load_plugins()
    doc = parse(text, source)
    root = doc.root
    if root is None or is_null(root):
        raise ConfigErrors(
            [ConfigError("", None, "the config is empty; it needs storage and interfaces", source)]
        )
    d = Decoder(doc, TYPE_DECODERS)
    d.nodes[""] = root
    entries = d.mapping(root, "", "a mapping of storage, namers, interfaces, admin")
    if entries is INVALID:
        raise ConfigErrors(d.errors)
    known = ("storage", "namers", "interfaces", "admin")
    for key, (key_node, _) in entries.items():
        if key in REFUSED_KEYS:
            d.error(key, key_node, refusal(key, REFUSED_KEYS[key]))
        elif key not in known and key not in IGNORED_TOP_LEVEL:
            d.error(key, key_node, f"unknown key {key!r}; namerd's keys: {', '.join(known)}")
    storage = _storage(d, entries["storage"][1]) if "storage" in entries else None
    if storage is None:
        d.error("", root, "missing required key 'storage' (e.g. kind: io.l5d.inMemory)")
    namers: Any = ()
    if "namers" in entries:
        namers = d.decode(tuple[NamerSpec, ...], entries["namers"][1], "namers")
        if namers is not INVALID:
            for i, spec in enumerate(namers):
                if spec.transformers:
                    d.error(
                        f"namers[{i}].transformers",
                        entries["namers"][1],
                        refusal("transformers", "transformers on namerd's namers"),
                    )
            _check_prefixes(d, namers, entries["namers"][1])
    interfaces: Any = INVALID
    if "interfaces" in entries:
        interfaces = _interfaces(d, entries["interfaces"][1])
    else:
        d.error("", root, "missing required key 'interfaces' (e.g. - kind: io.l5d.httpController)")
    admin: Any = AdminConfig(port=DEFAULT_ADMIN_PORT)
    if "admin" in entries:
        node = entries["admin"][1]
        admin_entries = d.mapping(node, "admin")
        admin = (
            d.decode_fields(
                AdminConfig, admin_entries, node, "admin", defaults={"port": DEFAULT_ADMIN_PORT}
            )
            if admin_entries is not INVALID
            else INVALID
        )
    if d.errors:
        raise ConfigErrors(d.errors)
    assert storage is not None and storage is not INVALID
    return NamerdConfig(
        storage=storage,
        namers=tuple(namers),
        interfaces=tuple(interfaces),
        admin=admin,
        source_dir=source_dir,
    )


def _kind(d: Decoder, entries: dict[str, tuple[Node, Node]], node: Node, where: str) -> Any:
    if "kind" not in entries:
        return d.error(where, node, "missing required key 'kind'")
    return d.decode(str, entries["kind"][1], f"{where}.kind")


def _storage(d: Decoder, node: Node) -> Any:
    entries = d.mapping(node, "storage", "a mapping with a kind (e.g. kind: io.l5d.inMemory)")
    if entries is INVALID:
        return INVALID
    kind = _kind(d, entries, node, "storage")
    if kind is INVALID:
        return INVALID
    if kind in REFUSED_STORAGE:
        return d.error(
            "storage.kind",
            entries["kind"][1],
            refusal(f"storage kind {kind}", REFUSED_STORAGE[kind]),
        )
    if kind not in (IN_MEMORY, K8S, K8S_V2):
        return d.error(
            "storage.kind",
            entries["kind"][1],
            f"unknown storage kind {kind!r}; known: {IN_MEMORY}, {K8S}, {K8S_V2}",
        )
    k8s = kind in (K8S, K8S_V2)
    bad = False
    if "namespaces" in entries:
        names = d.mapping(entries["namespaces"][1], "storage.namespaces")
        if names is not INVALID:
            for ns, (key_node, _) in names.items():
                problem = namespace_problem(ns)
                if problem is not None:
                    d.error(f"storage.namespaces.{ns[:40]}", key_node, problem)
                    bad = True
            if len(names) > MAX_NAMESPACES:
                d.error("storage.namespaces", node, f"at most {MAX_NAMESPACES} namespaces")
                bad = True
    if k8s:
        bad = _check_k8s_names(d, entries) or bad
    cls = K8sStorage if k8s else InMemoryStorage
    config = d.decode_fields(cls, entries, node, "storage", frozenset({"kind"}))
    if config is INVALID:
        return INVALID
    return INVALID if bad else StorageSpec(kind, config)


def _check_k8s_names(d: Decoder, entries: dict[str, tuple[Node, Node]]) -> bool:
    """DTab objects are named by their dtab namespace, and live in a Kubernetes namespace:
    both must be names Kubernetes accepts (a create would otherwise fail at run time)."""
    bad = False
    if "namespace" in entries:
        value = entries["namespace"][1]
        text = getattr(value, "value", None)
        if isinstance(text, str) and not _K8S_LABEL.match(text):
            d.error("storage.namespace", value, f"not a Kubernetes namespace name: {text[:64]!r}")
            bad = True
    if "namespaces" in entries:
        names = d.mapping(entries["namespaces"][1], "storage.namespaces")
        if names is not INVALID:
            for ns, (key_node, _) in names.items():
                if namespace_problem(ns) is None and not _K8S_NAME.match(ns):
                    d.error(
                        f"storage.namespaces.{ns[:40]}",
                        key_node,
                        "with io.l5d.k8s a namespace names a Kubernetes object: lower-case "
                        "letters, digits, '-' and '.', starting and ending with a letter or digit",
                    )
                    bad = True
    return bad


_K8S_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?\Z")


def _interfaces(d: Decoder, node: Node) -> Any:
    if not isinstance(node, SequenceNode) or not node.value:
        return d.error(
            "interfaces", node, "expected a list of interfaces (e.g. - kind: io.l5d.httpController)"
        )
    out: list[InterfaceSpec] = []
    ok = True
    for i, child in enumerate(node.value):
        where = f"interfaces[{i}]"
        entries = d.mapping(child, where, "a mapping with a kind")
        if entries is INVALID:
            ok = False
            continue
        kind = _kind(d, entries, child, where)
        if kind is INVALID:
            ok = False
            continue
        if kind in REFUSED_INTERFACES:
            d.error(
                f"{where}.kind",
                entries["kind"][1],
                refusal(f"interface kind {kind}", REFUSED_INTERFACES[kind]),
            )
            ok = False
            continue
        if kind != HTTP_CONTROLLER:
            d.error(
                f"{where}.kind",
                entries["kind"][1],
                f"unknown interface kind {kind!r}; known: {HTTP_CONTROLLER}",
            )
            ok = False
            continue
        for key in ("tls", "socketOptions"):
            if key in entries:
                d.error(f"{where}.{key}", entries[key][0], refusal(key, REFUSED_KEYS[key]))
                ok = False
        rest = {k: v for k, v in entries.items() if k not in ("tls", "socketOptions")}
        config = d.decode_fields(HttpControllerConfig, rest, child, where, frozenset({"kind"}))
        if config is INVALID:
            ok = False
            continue
        out.append(InterfaceSpec(kind, config))
    return out if ok else INVALID


def _check_prefixes(d: Decoder, namers: tuple[NamerSpec, ...], node: Node) -> None:
    """namerd refuses namers whose prefixes overlap."""
    for i, a in enumerate(namers):
        for b in namers[:i]:
            if a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix):
                d.error(
                    f"namers[{i}].prefix",
                    node,
                    f"namers must not have overlapping prefixes: {b.prefix.show()} & {a.prefix.show()}",
                )
