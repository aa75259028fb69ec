"""Checks across fields, run once the whole config decoded.

* router labels are unique (they name metrics and admin pages);
* no two servers (nor a server and the admin server) listen on the same ip:port
  (0.0.0.0 overlaps every address; port 0 means any free port and never clashes);
* namer prefixes are unique;
* every ``/#/<prefix>`` a dtab sends to names a configured namer;
* an access log is rolled by one process only (no roll policy with several workers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from yaml.nodes import SequenceNode

from l5d_twisted.config.decode import Decoder
from l5d_twisted.config.dtabs import namer_references, text_line
from l5d_twisted.config.errors import ConfigError
from l5d_twisted.config.model import AdminConfig, NamerSpec, RouterConfig, ServerConfig
from l5d_twisted.naming.path import Path


@dataclass
class _Parts:
    """The parts of a config that decoded (a list item that did not is None)."""

    admin: AdminConfig | None
    routers: list[RouterConfig | None]
    namers: list[NamerSpec | None]
    servers: list[tuple[str, ServerConfig]]  # (key path, server), also of broken routers
    labels: list[str | None]  # each router's label (None if unknown: it did not decode)


def _parts(decoder: Decoder) -> _Parts:
    def items(key: str) -> list[Any]:
        node = decoder.nodes.get(key)
        count = len(node.value) if isinstance(node, SequenceNode) else 0
        return [decoder.values.get(f"{key}[{i}]") for i in range(count)]

    admin = decoder.values.get("admin", AdminConfig() if "admin" not in decoder.nodes else None)
    routers = items("routers")
    servers: list[tuple[str, ServerConfig]] = []
    labels = []
    for i, router in enumerate(routers):
        if router is not None:
            servers.extend(
                (f"routers[{i}].servers[{j}]", server) for j, server in enumerate(router.servers)
            )
            labels.append(router.label)
        else:
            listed = items(f"routers[{i}].servers")
            servers.extend(
                (f"routers[{i}].servers[{j}]", server)
                for j, server in enumerate(listed)
                if server is not None
            )
            label = decoder.values.get(f"routers[{i}].label")
            labels.append(str(label) if label else None)
    return _Parts(admin, routers, items("namers"), servers, labels)


def cross_check(decoder: Decoder) -> list[ConfigError]:
    """Problems across fields of whatever decoded (so they show with the other errors)."""
    parts = _parts(decoder)
    source = decoder.doc.source
    found: list[ConfigError] = []
    for where, message in (
        *_unique_labels(parts),
        *_port_clashes(parts),
        *_unique_namer_prefixes(parts),
        *_access_log_rolls_with_workers(parts, decoder),
    ):
        found.append(ConfigError(where, decoder.line(where), message, source))
    if all(
        namer is not None for namer in parts.namers
    ):  # else any reference may be to the broken one
        found.extend(_dangling_namer_refs(parts, decoder))
    return found


def _unique_labels(parts: _Parts) -> Iterator[tuple[str, str]]:
    first: dict[str, int] = {}
    for i, label in enumerate(parts.labels):
        if label is None:
            continue
        if label in first:
            yield (
                f"routers[{i}].label",
                f"router label {label!r} is already used by routers[{first[label]}]; give each router its own label",
            )
        else:
            first[label] = i


def _port_clashes(parts: _Parts) -> Iterator[tuple[str, str]]:
    taken: list[tuple[str, int, str]] = []  # ip, port, where
    listeners = [("admin", parts.admin.ip, parts.admin.port)] if parts.admin is not None else []
    listeners.extend((where, server.ip, server.port) for where, server in parts.servers)
    for where, ip, port in listeners:
        if port == 0:
            continue
        for other_ip, other_port, other_where in taken:
            if other_port == port and _overlap(ip, other_ip):
                yield (
                    f"{where}.port",
                    f"{ip}:{port} is already used by {other_where} ({other_ip}:{other_port})",
                )
                break
        else:
            taken.append((ip, port, where))


def _overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        ip_a, ip_b = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    return ip_a.is_unspecified or ip_b.is_unspecified


def _access_log_rolls_with_workers(parts: _Parts, decoder: Decoder) -> Iterator[tuple[str, str]]:
    """Worker processes share a router's access log (appending whole lines); each would roll
    it on its own, so a roll policy needs one process."""
    workers = decoder.values.get("workers")
    count = getattr(workers, "count", 1)
    if count == 1:
        return
    for i, router in enumerate(parts.routers):
        policy = getattr(router, "http_access_log_roll_policy", "never")
        if router is not None and router.http_access_log and policy.strip().lower() != "never":
            yield (
                f"routers[{i}].httpAccessLogRollPolicy",
                f"with workers: {'auto' if count is None else count} every worker would roll "
                "the shared access log on its own; use never (and rotate it with logrotate's "
                "copytruncate) or workers: 1",
            )


def _unique_namer_prefixes(parts: _Parts) -> Iterator[tuple[str, str]]:
    first: dict[str, int] = {}
    for i, namer in enumerate(parts.namers):
        if namer is None:
            continue
        prefix = namer.prefix.show()
        if prefix in first:
            yield (
                f"namers[{i}].prefix",
                f"namer prefix {prefix} is already used by namers[{first[prefix]}]; set a distinct prefix",
            )
        else:
            first[prefix] = i


def _dangling_namer_refs(parts: _Parts, decoder: Decoder) -> Iterator[ConfigError]:
    namers = [namer for namer in parts.namers if namer is not None]
    prefixes = [namer.prefix.segments for namer in namers]
    configured = ", ".join("/#" + namer.prefix.show() for namer in namers) or "none"
    for i in range(len(parts.routers)):
        where = f"routers[{i}].dtab"
        node = decoder.nodes.get(where)
        if node is None:
            continue
        label = parts.labels[i] or f"routers[{i}]"
        text = str(getattr(node, "value", ""))
        for segments, offset in namer_references(text):
            if any(segments[: len(p)] == p for p in prefixes):
                continue
            ref = Path.of("#", *segments).show()
            yield ConfigError(
                where,
                text_line(node, offset),
                f"router {label!r} dtab sends to {ref}, but no namer has prefix "
                f"{Path.of(segments[0]).show()} (configured: {configured})",
                decoder.doc.source,
            )
