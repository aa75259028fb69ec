"""What a request's own dtab may do: the trust boundary between clients and the mesh.

A client may send a dtab with its request (``l5d-dtab``, or ``l5d-ctx-dtab`` from an
upstream hop).  Per server, ``requestDtab.enabled`` says whether it is honoured at all (the
HTTP server strips both fields otherwise) and ``requestDtab.allowAddresses`` whether it may
delegate to the address built-ins.  Three checks live here:

* :func:`address_rule`: the first rule of a request dtab that delegates to a built-in
  yielding raw addresses (``/$/inet``, ``/$/io.buoyant.rinet``, the host:port rewriters, or
  ``/$`` itself, whose namer the name would choose); the router refuses such a request
  with 403 unless the server allows addresses.
* :class:`OwnAddresses`: the listening addresses of this process (admin and router ports;
  for a 0.0.0.0 or :: bind, any local address on that port) and the link-local metadata
  addresses.  An endpoint at one of them is built with :class:`RequestDtabGuard` in
  front, which refuses (403) the requests whose route was bound with a request dtab.  The
  check is made once per endpoint, when it is created; endpoints elsewhere (nearly all of
  them) get no guard, so routes without an override pay nothing per request.
* The loop marker (``headers.LOOP``) is the router's; see ``headers.check_loop``.
"""

from __future__ import annotations

import ipaddress
import socket

from twisted.internet.defer import Deferred, fail

from l5d_twisted import request_context
from l5d_twisted.errors import Forbidden
from l5d_twisted.http.message import Request, Response
from l5d_twisted.naming.addr import Address
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.nametree import Alt, Leaf, NameTree, Union
from l5d_twisted.naming.path import Path
from l5d_twisted.service import Filter, Service

# request.ctx key: set by the router when the request's route was bound with a request dtab
# (l5d-dtab / l5d-ctx-dtab); read by RequestDtabGuard.
REQUEST_DTAB = request_context.REQUEST_DTAB

BUILTIN = "$"
# Built-ins that turn the name's own segments into a host and port.
ADDRESS_BUILTINS = frozenset(
    {"inet", "io.buoyant.rinet", "io.buoyant.hostportPfx", "io.buoyant.porthostPfx"}
)
# Rewriting built-ins and the index of their prefix argument: harmless with a fixed prefix,
# but with the prefix "$" (or none, so the name supplies it) they can spell /$/inet/...
PREFIX_BUILTINS = {"io.buoyant.http.domainToPathPfx": 0, "io.buoyant.http.subdomainOfPfx": 1}
HARMLESS_BUILTINS = frozenset({"nil", "fail"})

METADATA_NETWORKS = (
    ipaddress.ip_network(
        "169.254.0.0/16"
    ),  # IPv4 link-local: cloud metadata (169.254.169.254), ECS, kubelet-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS's IPv6 metadata endpoint
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
)
_LOCALHOST_NAMES = ("localhost", "localhost.", "ip6-localhost")
_MAX_CACHED = 1024

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def reaches_addresses(path: Path) -> bool:
    """Whether a dtab destination delegates to a built-in that yields raw addresses."""
    if path.is_empty or path[0] != BUILTIN:
        return False
    if len(path) == 1:
        return True  # /$ alone: the name picks the built-in
    name = path[1]
    if name in HARMLESS_BUILTINS:
        return False
    prefix_at = PREFIX_BUILTINS.get(name)
    if prefix_at is None:
        return True  # an address built-in, or one unknown here: refused (an allowlist)
    args = path.drop(2)
    return len(args) <= prefix_at or args[prefix_at] == BUILTIN


def address_rule(dtab: Dtab) -> str | None:
    """The first rule of ``dtab`` that delegates to an address built-in, shown; None if none.

    Walks each rule's tree with a stack (no recursion: the tree comes from a request).
    """
    for dentry in dtab:
        stack: list[NameTree[Path]] = [dentry.dst]
        while stack:
            tree = stack.pop()
            if isinstance(tree, Leaf):
                if reaches_addresses(tree.value):
                    return dentry.show()
            elif isinstance(tree, Alt):
                stack.extend(tree.trees)
            elif isinstance(tree, Union):
                stack.extend(b.tree for b in tree.branches)
    return None


def _ip(host: str) -> IpAddress | None:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_metadata(ip: IpAddress) -> bool:
    return any(ip in net for net in METADATA_NETWORKS)


class OwnAddresses:
    """The addresses this process listens on, filled in by the mesh as it binds them.

    ``is_local`` (is this IP one of the host's?) is answered by trying to bind it, once per
    IP (cached), and only for an address on one of our ports behind a wildcard bind.
    """

    def __init__(self) -> None:
        self._exact: set[tuple[IpAddress, int]] = set()
        self._wildcard_ports: set[int] = set()
        self._ports: set[int] = set()
        self._router_ports: set[int] = set()
        self._local: dict[IpAddress, bool] = {}

    def add(self, host: str, port: int, *, router: bool = False) -> None:
        """A listening address (``router``: a router's server; else the admin server)."""
        ip = _ip(host)
        if ip is None:
            return
        self._ports.add(port)
        if router:
            self._router_ports.add(port)
        if ip.is_unspecified:
            self._wildcard_ports.add(port)
        else:
            self._exact.add((ip, port))

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self._ports)

    def forbidden(self, address: Address, *, transformed: bool = False) -> str | None:
        """Why a request dtab may not reach ``address`` (None: it may).

        ``transformed``: the address came from one of the operator's transformers (a bound
        name ``/%/...``), whose job is to send to a mesh router (the daemonset transformer
        to the incoming router, maybe this process's): its router ports are allowed.  The
        admin port and metadata addresses never are.
        """
        port = address.port
        if transformed and port in self._router_ports and port not in self._admin_ports():
            ip = _ip(address.host)
            return (
                f"{address.show()} is a link-local (metadata) address"
                if ip is not None and is_metadata(ip)
                else None
            )
        ip = _ip(address.host)
        if ip is None:
            name = address.host.lower()
            if name in _LOCALHOST_NAMES or name.endswith(".localhost"):
                ip = ipaddress.ip_address("127.0.0.1")
            elif port in self._ports:
                return f"{address.show()} may be this mesh's own port {port} (a host name, not an address)"
            else:
                return None
        if is_metadata(ip):
            return f"{address.show()} is a link-local (metadata) address"
        if port not in self._ports:
            return None
        if ip.is_unspecified:  # connecting to 0.0.0.0 or :: reaches this host
            ip = ipaddress.ip_address("127.0.0.1" if ip.version == 4 else "::1")
        if (ip, port) in self._exact or (port in self._wildcard_ports and self.is_local(ip)):
            return f"{address.show()} is this mesh's own port"
        if ip.is_loopback and any(p == port and own.is_loopback for own, p in self._exact):
            # 127.0.0.2 and 127.0.0.1 may be the same listener's host
            return f"{address.show()} is this mesh's own port"
        return None

    def _admin_ports(self) -> set[int]:
        return self._ports - self._router_ports

    def is_local(self, ip: IpAddress) -> bool:
        if ip.is_loopback:
            return True
        known = self._local.get(ip)
        if known is None:
            known = _can_bind(ip)
            if len(self._local) >= _MAX_CACHED:
                self._local.clear()
            self._local[ip] = known
        return known


def _can_bind(ip: IpAddress) -> bool:
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


class RequestDtabGuard(Filter[Request, Response]):
    """In front of an endpoint a request dtab must not reach: refuses those requests (403)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        if request.ctx.get(REQUEST_DTAB):
            return fail(Forbidden(f"a request dtab may not route here: {self.reason}"))
        return service(request)


def guarded(reason: str | None, endpoint: Service[Request, Response]) -> Service[Request, Response]:
    """``endpoint``, with a guard in front if ``reason`` says a request dtab may not reach it."""
    if reason is None:
        return endpoint
    return RequestDtabGuard(reason).and_then(endpoint)
