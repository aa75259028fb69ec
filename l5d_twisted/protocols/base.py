"""What a protocol supplies to the mesh and its routers (linkerd 1's ProtocolInitializer).

A protocol module registers a factory returning a :class:`RouterProtocol`::

    @PROTOCOLS.register("http", NoConfig)
    def http_protocol(config: NoConfig) -> RouterProtocol:
        return HTTP

and ``routers[].protocol: http`` selects it (``l5d-twisted check`` refuses a name no module
registered).  The protocol supplies:

* ``serve(reactor, router_config, server_config, service, stats)``: listen on the server's
  ip and port and hand every request to ``service`` (the router behind the server stack);
  returns a :class:`Listening`;
* ``endpoint_factory`` and ``client_settings``: how the router reaches one address.
  ``endpoint_factory(reactor, address, settings, stats, connect_timeout_s=..., tls=...)``
  returns the endpoint layer's leaf service, ``settings`` being what
  ``client_settings(router_config, client_params)`` made once per client (for http, the
  connection pool's settings).  Connections are reached through a
  :class:`~l5d_twisted.protocols.session.SessionPool`, which admits HTTP/1 connections
  (one exchange at a time) and multiplexed sessions (HTTP/2 streams) alike;
* ``stacks``: its default :class:`~l5d_twisted.router.stacks.RouterStacks`, which plugins'
  stack edits are applied to;
* ``default_port``, ``default_identifier`` and ``default_classifier``: the kinds a router
  of this protocol gets when its config names none.

The router's messages are :class:`~l5d_twisted.http.message.Request` and ``Response``
(method, target, fields, body; HTTP/2 maps onto them as HTTP/1 does); a protocol's server and
endpoint translate its wire format to and from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from l5d_twisted.config.model import RouterConfig, ServerConfig
from l5d_twisted.config.params import ClientParams
from l5d_twisted.http.message import Request, Response
from l5d_twisted.registry import PROTOCOLS
from l5d_twisted.router.stacks import RouterStacks, StackEdit
from l5d_twisted.service import Service
from l5d_twisted.telemetry.stats import StatsReceiver


class Listening(Protocol):
    """A listening server.  It may also offer ``begin_drain()`` (answer with
    ``Connection: close`` or its protocol's equivalent, close idle connections) and
    ``drain(grace_s) -> Deferred`` (stop listening, let in-flight requests finish within the
    grace); the mesh calls them when present, ``stopListening`` otherwise."""

    def getHost(self) -> Any: ...  # noqa: N802 (Twisted's name)

    def stopListening(self) -> Deferred[None] | None: ...  # noqa: N802


class EndpointFactory(Protocol):
    def __call__(
        self,
        reactor: Any,
        address: Any,
        settings: Any,
        stats: StatsReceiver,
        /,
        *,
        connect_timeout_s: float = 1.0,
        tls: Any = None,
    ) -> Service[Request, Response]: ...


Serve = Callable[
    [Any, RouterConfig, ServerConfig, Service[Request, Response], StatsReceiver], Listening
]


@dataclass(frozen=True)
class RouterProtocol:
    name: str
    serve: Serve
    endpoint_factory: EndpointFactory
    client_settings: Callable[[RouterConfig, ClientParams], Any]
    stacks: RouterStacks
    default_port: int
    default_identifier: str
    default_classifier: str
    # what a router's own config adds to its stacks (http: httpAccessLog), None: nothing
    router_addons: Callable[[Any, RouterConfig], RouterAddOns] | None = None


@dataclass(frozen=True)
class RouterAddOns:
    """Stack edits a router's config asks for, and what to close when the mesh stops."""

    edits: tuple[StackEdit, ...] = ()
    closers: tuple[Callable[[], object], ...] = ()


@dataclass(frozen=True)
class NoConfig:
    """A protocol's config block: none yet (its knobs are the router's)."""


def protocol_named(name: str) -> RouterProtocol:
    """The registered protocol ``name`` (``UnknownKind`` names the known ones)."""
    plugin = PROTOCOLS.get(name)
    protocol: RouterProtocol = plugin.factory(plugin.config_type())
    return protocol
