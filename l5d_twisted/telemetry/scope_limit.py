"""A cap on the service and client metric scopes a router makes from request data.

A router makes a metric scope per logical name (``rt/<r>/service/<name>``) and per bound
name (``rt/<r>/client/<id>``), and the names come from requests (the Host header, an
``l5d-dtab`` override): without a cap a client sending random Host values makes one
scope each, ~30 Prometheus lines apiece (issue 10: 3,000 random Hosts gave 90,608 lines
and a 1.8 s scrape).  linkerd 1 had no cap; idle expiry alone lets such scopes live for
the whole TTL.

:func:`limited_scope` is what the router calls instead of ``stats.scope(kind, name)``:

* a name whose scope exists (live, or expired but still held and able to come back)
  gets it, as before;
* a new name gets its own scope while the router has fewer than ``max_scopes`` live
  scopes of that kind (service and client are counted apart);
* beyond that, new names share the scope :data:`OVERFLOW_SCOPE` (``<overflow>``: ``<``
  and ``>`` are not allowed in a path segment, so no dst path or bound id can show as
  that) and each one sent there counts ``rt/<r>/service_scope_overflow`` (or
  ``client_scope_overflow``), exported as ``rt:service_scope_overflow{rt="<r>"}``: alert
  on its increase.

A scope frees its slot when it expires (``metricsExpiryTtlSecs`` of idleness, see
:mod:`.metrics`).  An expired scope whose route the router still holds comes back on its
next request even when the cap is full (its route exists already); so the live count can
pass the cap by at most the routes and clients the router keeps (``bindingCache.paths``
and ``clients``), and only with names admitted before.  ``max_scopes`` 0 means no cap.

The default, :data:`DEFAULT_MAX_METRIC_SCOPES` (1,000), was the size of the router's route
and client caches until issue 17 made those 10,000 (so that a node's 10,000 active names
stay bound).  The metric cap stays at 1,000 on purpose: each scoped name costs ~17 KB and
~54 exposition lines for its service and client scopes (bench/README.md, "Scale: names"),
so 10,000 scoped names would mean a ~540,000-line scrape per router; past the first 1,000 names, names
are still routed and cached, and only their metrics are pooled in ``<overflow>``.  A node
that wants every name's metrics raises ``routers[].maxMetricScopes`` (0: no cap) and pays
for it in memory and scrape time.
"""

from __future__ import annotations

from l5d_twisted.telemetry.metrics import MetricsTree, _normalise
from l5d_twisted.telemetry.stats import StatsReceiver

OVERFLOW_SCOPE = "<overflow>"
DEFAULT_MAX_METRIC_SCOPES = 1000


def limited_scope(stats: StatsReceiver, kind: str, name: str, max_scopes: int) -> StatsReceiver:
    """``stats.scope(kind, name)``, or the overflow scope once ``max_scopes`` are live.

    ``stats`` is a router's scope (``rt/<r>``) and ``kind`` ``"service"`` or
    ``"client"``.  Receivers not backed by a :class:`MetricsTree` (tests' recorders, the
    null receiver) are scoped as usual.
    """
    tree = getattr(stats, "tree", None)
    prefix = getattr(stats, "prefix", None)
    if max_scopes <= 0 or not isinstance(tree, MetricsTree) or not isinstance(prefix, tuple):
        return stats.scope(kind, name)
    key = prefix + _normalise((kind, name))
    if len(key) != 4 or key[0] != "rt":  # not rt/<r>/<kind>/<name>: nothing to cap
        return stats.scope(kind, name)
    # Made with the first scope, so the counter is exported (at 0) before any overflow:
    # Prometheus' increase() sees no increase in a series' first sample.
    overflow = stats.counter(f"{kind}_scope_overflow")
    if tree.has_scope(key):
        return stats.scope(kind, name)
    kind_key = key[:3]
    live = tree.live_scopes(kind_key)
    if tree.is_live(kind_key + (OVERFLOW_SCOPE,)):
        live -= 1  # the overflow scope takes no slot
    if live < max_scopes:
        tree.claim_scope(key)
        return stats.scope(kind, name)
    overflow.incr()
    # one receiver shared by every name sent there (issue 17: 240 bytes a name)
    return tree.shared_scope(kind_key + (OVERFLOW_SCOPE,))
