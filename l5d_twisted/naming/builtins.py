"""The ``/$/`` namers every dtab can use without configuring anything.

* ``/$/inet/<host>/<port>``: DNS (or an IP literal), see ``naming.inet``.
* ``/$/io.buoyant.rinet/<port>/<host>``: the same, arguments reversed.
* ``/$/io.buoyant.http.domainToPathPfx/<pfx>/<a.b.c>``: rewrites to ``/<pfx>/c/b/a``.
* ``/$/io.buoyant.http.subdomainOfPfx/<domain>/<pfx>/<sub.domain>``: ``/<pfx>/<sub>``,
  negative when the host is not under ``domain``.
* ``/$/io.buoyant.hostportPfx/<pfx>/<host:port>``: ``/<pfx>/<host>/<port>``.
* ``/$/io.buoyant.porthostPfx/<pfx>/<host:port>``: ``/<pfx>/<port>/<host>``.
* ``/$/nil``: empty; ``/$/fail``: failure.

Rewriting namers return a tree of *paths*, which the interpreter resolves again through the
dtab; anything after the arguments is carried along.  A malformed use is a failure with a
message that shows the expected form.
"""

from __future__ import annotations

from collections.abc import Callable

from l5d_twisted.naming.activity import failed, ok
from l5d_twisted.naming.inet import InetNamer, parse_port
from l5d_twisted.naming.nametree import EMPTY, FAIL, NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import State, Var

DOLLAR = "$"


class BuiltinError(ValueError):
    pass


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port:
        return None
    return host, port


def _domain_labels(host: str) -> list[str]:
    return [label for label in host.split(".") if label]


class Builtins:
    """Looks up ``/$/<name>/<args...>`` paths; ``lookup`` gets the part after ``/$``."""

    def __init__(self, inet: InetNamer) -> None:
        self._inet = inet
        self._handlers: dict[str, tuple[str, Callable[[Path], Var[State]]]] = {
            "inet": ("/$/inet/<host>/<port>", self._inet_lookup),
            "io.buoyant.rinet": ("/$/io.buoyant.rinet/<port>/<host>", self._rinet_lookup),
            "io.buoyant.http.domainToPathPfx": (
                "/$/io.buoyant.http.domainToPathPfx/<pfx>/<host>",
                self._domain_to_path,
            ),
            "io.buoyant.http.subdomainOfPfx": (
                "/$/io.buoyant.http.subdomainOfPfx/<domain>/<pfx>/<host>",
                self._subdomain_of,
            ),
            "io.buoyant.hostportPfx": (
                "/$/io.buoyant.hostportPfx/<pfx>/<host:port>",
                self._hostport,
            ),
            "io.buoyant.porthostPfx": (
                "/$/io.buoyant.porthostPfx/<pfx>/<host:port>",
                self._porthost,
            ),
            "nil": ("/$/nil", lambda rest: ok(EMPTY)),
            "fail": ("/$/fail", lambda rest: ok(FAIL)),
        }

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def lookup(self, path: Path) -> Var[State]:
        """``path`` is ``/<name>/<args...>`` (what follows ``/$``)."""
        if path.is_empty:
            return failed(
                BuiltinError(f"'/$' needs a namer name; known: {', '.join(self.names())}")
            )
        name = path[0]
        entry = self._handlers.get(name)
        if entry is None:
            return failed(
                BuiltinError(f"unknown namer /$/{name}; known: {', '.join(self.names())}")
            )
        usage, handler = entry
        try:
            return handler(path.drop(1))
        except BuiltinError as e:
            return failed(BuiltinError(f"{e} (usage: {usage})"))
        except ValueError as e:
            return failed(BuiltinError(f"/$/{name}: {e} (usage: {usage})"))

    # --- DNS ----------------------------------------------------------------------------
    def _inet_lookup(self, args: Path) -> Var[State]:
        if len(args) < 2:
            raise BuiltinError("/$/inet needs a host and a port")
        host, port = args[0], parse_port(args[1])
        bound = self._inet.bind(Path.of(DOLLAR, "inet", args[0], args[1]), host, port, args.drop(2))
        return ok(Leaf(bound))

    def _rinet_lookup(self, args: Path) -> Var[State]:
        if len(args) < 2:
            raise BuiltinError("/$/io.buoyant.rinet needs a port and a host")
        port, host = parse_port(args[0]), args[1]
        bound = self._inet.bind(
            Path.of(DOLLAR, "io.buoyant.rinet", args[0], args[1]), host, port, args.drop(2)
        )
        return ok(Leaf(bound))

    # --- rewriting namers ------------------------------------------------------------------
    def _domain_to_path(self, args: Path) -> Var[State]:
        if len(args) < 2:
            raise BuiltinError("/$/io.buoyant.http.domainToPathPfx needs a prefix and a host")
        labels = _domain_labels(args[1])
        if not labels:
            return ok(NEG)
        return ok(Leaf(Path.of(args[0], *reversed(labels)) + args.drop(2)))

    def _subdomain_of(self, args: Path) -> Var[State]:
        if len(args) < 3:
            raise BuiltinError(
                "/$/io.buoyant.http.subdomainOfPfx needs a domain, a prefix and a host"
            )
        domain, pfx, host = args[0], args[1], args[2]
        split = _split_host_port(host)
        if split is not None and split[1].isdigit():
            host = split[0]
        suffix = "." + domain.strip(".")
        if not host.endswith(suffix) or len(host) == len(suffix):
            return ok(NEG)
        return ok(Leaf(Path.of(pfx, host[: -len(suffix)]) + args.drop(3)))

    def _hostport(self, args: Path) -> Var[State]:
        return self._host_and_port(args, "io.buoyant.hostportPfx", port_first=False)

    def _porthost(self, args: Path) -> Var[State]:
        return self._host_and_port(args, "io.buoyant.porthostPfx", port_first=True)

    def _host_and_port(self, args: Path, name: str, port_first: bool) -> Var[State]:
        if len(args) < 2:
            raise BuiltinError(f"/$/{name} needs a prefix and a host:port")
        split = _split_host_port(args[1])
        if split is None:
            return ok(NEG)  # no port: the rule does not apply, fall back
        host, port = split
        parts = (port, host) if port_first else (host, port)
        return ok(Leaf(Path.of(args[0], *parts) + args.drop(2)))
