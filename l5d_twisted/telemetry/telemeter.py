"""The contract telemeters meet (``telemetry:`` entries in the config).

A telemeter is a registered plugin, ``TELEMETERS.register(kind, ConfigType)``, whose
factory is ``factory(config, ctx: PluginContext) -> Telemeter``.  The mesh hands it
``ctx.stats = metrics_tree.stats`` (the root scope; :func:`metrics.tree_of` finds the
tree from it) and ``ctx.reactor``.  Everything a telemeter offers is optional:

* ``admin_resources() -> dict[bytes, IResource]``: exact admin paths it serves
  (``io.l5d.prometheus`` serves ``/admin/metrics/prometheus``); the admin server mounts
  them.
* ``stack_edits``: :class:`~l5d_twisted.router.stacks.StackEdit` values, modules the
  mesh inserts into every router's stacks before or after a named role
  (``io.l5d.recentRequests`` adds one after the server layer's ``stats``); this is how a
  telemeter sees requests, or changes them (tracing), without a core file knowing it.
* ``request_observer``: a :class:`RequestObserver` the router calls once per finished
  request, or ``None``.
* ``recent_requests``: a :class:`~l5d_twisted.telemetry.recent.RecentRequests` to show at
  ``/requests`` (the mesh exposes it as ``AdminTarget.recent_requests``).
* ``close()``: stop background work (may return a Deferred).

:class:`TelemeterBase` supplies the defaults; :func:`admin_resources_of` and
:func:`request_observer_of` read any object defensively.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.web.resource import IResource

from l5d_twisted.http.message import Request, Response
from l5d_twisted.router.stacks import StackEdit


class RequestObserver(Protocol):
    """Called by the router once per finished request (what ``Router`` calls).

    ``outcome`` is the response, or the exception the request failed with;
    ``latency_ms`` runs from the router receiving the request to the response head.
    The router also sets ``request.ctx[DST]`` (the logical name, a Path) and the
    forwarded ``l5d-dst-client`` header when it got that far.
    """

    def __call__(
        self, request: Request, outcome: Response | BaseException, latency_ms: float
    ) -> None: ...


class Telemeter(Protocol):
    request_observer: RequestObserver | None

    def admin_resources(self) -> dict[bytes, IResource]: ...

    def close(self) -> Any: ...


class TelemeterBase:
    stack_edits: Sequence[StackEdit] = ()
    request_observer: RequestObserver | None = None
    recent_requests: Any = None

    def admin_resources(self) -> dict[bytes, IResource]:
        return {}

    def close(self) -> Any:
        return None


def admin_resources_of(telemeter: object) -> dict[bytes, IResource]:
    fn = getattr(telemeter, "admin_resources", None)
    if fn is None:
        return {}
    return dict(fn())


def request_observer_of(telemeter: object) -> RequestObserver | None:
    return getattr(telemeter, "request_observer", None)
