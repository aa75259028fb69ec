"""Hard limits on the work one binding may do, whoever wrote the dtab.

A dtab can come from a request (``l5d-dtab``, ``l5d-ctx-dtab``) or the admin playground,
and a few bytes of it can describe an exponential amount of work: ``/svc => /svc/a &
/svc/b`` doubles at every one of the 100 allowed delegation steps.  Binding therefore
runs on a budget, and stops with a :class:`BindingLimitError` (a ``DelegationError``)
saying which limit was reached, in bounded time and memory:

* :data:`MAX_BIND_WORK` work units per binding pass.  A unit is roughly one name-tree node
  or path segment created, or eight dtab rules examined (see :meth:`BindBudget.charge`).
* :data:`MAX_TREE_DEPTH` alternations and unions nested inside each other along one
  branch, across all delegation steps.  With ``MAX_DEPTH`` (100 delegation steps, in
  ``naming.interpreter``) it bounds the recursion of binding, evaluation and
  explanation far below Python's recursion limit.
* :data:`MAX_UNION_WIDTH` leaves in one bound union: what a route keeps per name.

The limits are constants rather than config keys: they are far above what an operator's
dtab needs (a typical name binds in under 100 units with a nesting of 2 or 3), and far
below what hurts the proxy.
"""

from __future__ import annotations

from l5d_twisted.naming.path import Path

# Work units per binding pass.  The reference dtab binds a name in ~40 units, one name of
# a dtab with 2,000 per-service rules in ~300; 1,000 rules for one name (an 8 KB l5d-dtab
# header) that all fall through to the last take ~6,000.  10,000 units are ~10 ms of CPU
# and a few MB at most on the hostile shapes of tests/naming/test_naming_limits.py.
MAX_BIND_WORK = 10_000

# Alternations and unions nested along one branch (``a | (b & (c | ...))``, counted across
# delegation steps).  Real dtabs nest 2 or 3 deep; each level costs a few stack frames in
# binding, evaluation and comparison of bound trees, so 32 levels stay far below Python's
# default recursion limit of 1,000 together with 100 delegation steps (2 frames each).
MAX_TREE_DEPTH = 32

# Leaves of one bound union (traffic split over this many names).  Canary splits use two
# or three, a union over clusters or zones a few dozen; each leaf is kept per route.
MAX_UNION_WIDTH = 1000

# Rules examined per work unit: checking a rule's prefix is much cheaper than creating a
# node, but a dtab of thousands of rules for one prefix must still count.
RULES_PER_UNIT = 8


class DelegationError(ValueError):
    """Binding could not finish: too deep (a loop) or too much work."""


class BindingLimitError(DelegationError):
    """Binding stopped at one of the limits above; the message says which and where."""


def short(path: Path, limit: int = 80) -> str:
    text = path.show()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BindBudget:
    """The work left to one binding pass; :meth:`charge` raises when it runs out."""

    __slots__ = ("work", "limit")

    def __init__(self, limit: int = MAX_BIND_WORK) -> None:
        self.work = 0
        self.limit = limit

    def charge(self, units: int, path: Path) -> None:
        self.work += units
        if self.work > self.limit:
            raise BindingLimitError(
                f"binding needs more than {self.limit} work units (reached {short(path)}); the dtab expands too much"
            )


def check_tree_depth(level: int, path: Path | None) -> None:
    if level > MAX_TREE_DEPTH:
        where = f" (at {short(path)})" if path is not None else ""
        raise BindingLimitError(
            f"alternations and unions nested more than {MAX_TREE_DEPTH} deep{where}"
        )


def check_union_width(width: int) -> None:
    if width > MAX_UNION_WIDTH:
        raise BindingLimitError(
            f"a union would split traffic over {width} names, more than {MAX_UNION_WIDTH}"
        )
