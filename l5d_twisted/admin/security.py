"""``admin.security``: which admin paths are served, with linkerd 1's semantics.

linkerd 1 (``io.buoyant.admin.SecurityFilter``) sorts every admin path into one category:

* **ui**: what the dashboard and the dtab playground need.  linkerd 1's list, whose
  regexes are kept as they are (a user's white/blacklist speaks of the same paths), plus
  this server's own paths of the same pages: the dashboard at ``/index.html``, ``/admin``
  and ``/admin/``, its files under ``/static/`` (linkerd 1's ``/files/``), the figures it
  polls (``/admin/dashboard.json``) and the router list the playground reads
  (``/admin/routers.json``);
* **control**: what changes the process: ``/admin/shutdown`` (and linkerd 1's
  ``/logging.json``, which this server does not have);
* **diagnostics**: every other path (``/admin/ping``, ``/ready``, the Prometheus and
  telemeter paths, ``/client_state.json``, ``/namer_state/...``, ``/requests``, ...).

A path is served when it matches no ``pathBlacklist`` regex and either its category is
enabled or it matches a ``pathWhitelist`` regex: the blacklist wins over everything, the
whitelist reopens paths of a disabled category.  Regexes match the whole path (Java's
``Matcher.matches()``, Python's ``fullmatch``), without the query string.  A refused
path gets linkerd 1's answer: 404 with an empty body, saying nothing of what is there.
The path tested is the one the server dispatches on (the raw request path), so no
spelling of a path reaches a handler the filter refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

UI: Final = "ui"
CONTROL: Final = "control"
DIAGNOSTICS: Final = "diagnostics"

_LINKERD1_UI = (
    "/",
    "/files/.*",
    "/admin/files/.*",
    "/config[.]json",
    "/metrics[.]json",
    "/admin/metrics[.]json",
    "/admin/metrics",
    "/delegator",
    "/delegator[.]json",
    "/logging",
    "/help",
)
# this server's paths of the same pages (see the module doc)
_OWN_UI = (
    "/index[.]html",
    "/admin",
    "/admin/",
    "/static/.*",
    "/admin/dashboard[.]json",
    "/admin/routers[.]json",
)
_LINKERD1_CONTROL = ("/admin/shutdown", "/logging[.]json")

UI_PATHS: Final = tuple(re.compile(p, re.DOTALL) for p in _LINKERD1_UI + _OWN_UI)
CONTROL_PATHS: Final = tuple(re.compile(p, re.DOTALL) for p in _LINKERD1_CONTROL)


def category(path: str) -> str:
    """The category of an admin path (without its query string)."""
    if any(p.fullmatch(path) for p in UI_PATHS):
        return UI
    if any(p.fullmatch(path) for p in CONTROL_PATHS):
        return CONTROL
    return DIAGNOSTICS


def compile_paths(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """The regexes of a white/blacklist; ValueError naming the first that does not compile."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.DOTALL))
        except re.error as e:
            raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
    return tuple(compiled)


@dataclass(frozen=True)
class AdminSecurity:
    """The filter of one admin server (from ``admin.security``; see the module doc)."""

    ui_enabled: bool = True
    control_enabled: bool = True
    diagnostics_enabled: bool = True
    whitelist: tuple[re.Pattern[str], ...] = ()
    blacklist: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> AdminSecurity | None:
        """The filter of an ``AdminSecurityConfig`` (None: no ``security`` block)."""
        if config is None:
            return None
        return cls(
            ui_enabled=config.ui_enabled,
            control_enabled=config.control_enabled,
            diagnostics_enabled=config.diagnostics_enabled,
            whitelist=compile_paths(config.path_whitelist),
            blacklist=compile_paths(config.path_blacklist),
        )

    def allows(self, path: str) -> bool:
        if any(p.fullmatch(path) for p in self.blacklist):
            return False
        enabled = {
            UI: self.ui_enabled,
            CONTROL: self.control_enabled,
            DIAGNOSTICS: self.diagnostics_enabled,
        }[category(path)]
        return enabled or any(p.fullmatch(path) for p in self.whitelist)
