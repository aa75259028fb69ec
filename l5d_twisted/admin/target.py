"""What the admin server needs from a running mesh (the lead's ``Mesh`` implements it).

Tests implement it with a fake (``tests/admin/fake_mesh.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.path import Path
from l5d_twisted.telemetry.metrics import MetricsTree


class RouterView(Protocol):
    label: str
    dst_prefix: Path
    dtab: Dtab
    interpreter: Any  # naming.interpreter.Interpreter: explain(dtab, path) -> Explanation

    def client_state(self) -> dict[str, dict[str, Any]]:
        """Bound id -> ``{"state": "bound"|"neg"|"pending"|"failed", "addresses": [...]}``."""
        ...


class AdminTarget(Protocol):
    metrics: MetricsTree
    routers: Sequence[RouterView]
    namers: Mapping[str, Any]  # prefix text ("/io.l5d.fs") -> namer with .state()
    recent_requests: Any  # telemetry.recent.RecentRequests (or its telemeter), or None
    telemeters: Sequence[Any]  # each may expose admin_resources() -> {bytes path: IResource}
    allow_shutdown: bool

    def config_json(self) -> dict[str, Any]: ...

    def shutdown(self, grace_s: float) -> Deferred[None]: ...
