"""A name's address set kept up to date one changed object at a time (issue 17).

:func:`~l5d_twisted.k8s.objects.resolve` answers a (service, port) from all of the
service's objects; re-running it on every watch event costs O(endpoints of the service)
in Python, which at 1,000 endpoints and 10 changes/s was most of the mesh's CPU.
:class:`ShardResolver` answers the same thing from per-object parts
(:class:`~l5d_twisted.k8s.objects.ShardPart`): an object whose version did not change
(the watcher keeps the same :class:`ServiceShard` instance) costs one identity check, a
changed one costs O(its endpoints), and the address set changes by the difference only,
which it reports as ``added`` / ``removed`` for the client to apply.

Which parts count follows :func:`resolve`: if any object lists the port, the matching
subsets' addresses; else for a numbered port every ready endpoint on that number; else a
service with listed ports is negative, one without any an empty set.  An address served by
two objects (a pod moving between slices) stays until neither serves it: addresses are
reference-counted over the parts that count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from l5d_twisted.k8s.objects import ServiceShard, ShardPart, shard_part
from l5d_twisted.naming.addr import Address


class Mode(Enum):
    NEGATIVE = "negative"  # no object, or the port is not among those listed
    EMPTY = "empty"  # the service exists but lists no port (no endpoints yet)
    MATCHED = "matched"  # the subsets listing the port
    NUMBER = "number"  # a numbered port no object lists: every ready endpoint on it


@dataclass(frozen=True, slots=True)
class Change:
    """What one :meth:`ShardResolver.update` did to the address set."""

    exists: bool
    addresses: frozenset[Address]
    added: frozenset[Address]
    removed: frozenset[Address]


_EMPTY: frozenset[Address] = frozenset()


class ShardResolver:
    """The resolution of one port over a service's objects, updated incrementally."""

    __slots__ = (
        "port",
        "_number_ok",
        "_parts",
        "_matched",
        "_with_ports",
        "_mode",
        "_counts",
        "_set",
    )

    def __init__(self, port: str) -> None:
        self.port = port
        number = int(port) if port.isdigit() else None
        self._number_ok = number is not None and 0 < number < 65536
        self._parts: dict[str, tuple[ServiceShard, ShardPart]] = {}
        self._matched = 0  # parts with matched
        self._with_ports = 0  # parts with has_ports
        self._mode = Mode.NEGATIVE
        self._counts: dict[Address, int] = {}
        self._set: frozenset[Address] = _EMPTY

    @property
    def addresses(self) -> frozenset[Address]:
        return self._set

    def _mode_now(self) -> Mode:
        if not self._parts:
            return Mode.NEGATIVE
        if self._matched:
            return Mode.MATCHED
        if self._number_ok:
            return Mode.NUMBER
        return Mode.NEGATIVE if self._with_ports else Mode.EMPTY

    def _counted(self, part: ShardPart | None, mode: Mode) -> frozenset[Address]:
        if part is None:
            return _EMPTY
        if mode is Mode.MATCHED:
            return part.addresses if part.matched else _EMPTY
        return part.addresses if mode is Mode.NUMBER else _EMPTY

    def update(self, shards: Iterable[ServiceShard]) -> Change:
        """Bring the resolution to ``shards`` (the service's current objects)."""
        old_parts = self._parts
        parts: dict[str, tuple[ServiceShard, ShardPart]] = {}
        changes: list[tuple[ShardPart | None, ShardPart | None]] = []
        for shard in shards:
            previous = old_parts.get(shard.name)
            if previous is not None and previous[0] is shard:
                parts[shard.name] = previous
                continue
            part = (
                shard_part(shard, self.port, previous[1], previous[0])
                if previous is not None
                else shard_part(shard, self.port)
            )
            parts[shard.name] = (shard, part)
            changes.append((previous[1] if previous is not None else None, part))
        if len(parts) != len(old_parts) + sum(1 for old, _ in changes if old is None):
            changes.extend((old, None) for name, (_, old) in old_parts.items() if name not in parts)
        self._parts = parts
        for old, new in changes:
            if old is not None:
                self._matched -= old.matched
                self._with_ports -= old.has_ports
            if new is not None:
                self._matched += new.matched
                self._with_ports += new.has_ports
        mode, previous_mode = self._mode_now(), self._mode
        self._mode = mode
        before = self._set
        if mode is previous_mode:
            added, removed = self._apply(changes, mode)
        else:
            added, removed = self._recount(mode)
        if added or removed:
            # (removed are in the set, added are not: one copy, with the hashes it holds)
            self._set = before.symmetric_difference(removed | added)
        exists = mode is not Mode.NEGATIVE
        return Change(exists, self._set if exists else _EMPTY, added, removed)

    def _apply(
        self, changes: list[tuple[ShardPart | None, ShardPart | None]], mode: Mode
    ) -> tuple[frozenset[Address], frozenset[Address]]:
        counts = self._counts
        added: set[Address] = set()
        removed: set[Address] = set()
        for old, new in changes:
            if old is new:
                continue
            if old is not None and new is not None and new.delta is not None:
                # made from ``old``, whose ports it has: both count, or neither
                if not (mode is Mode.NUMBER or (mode is Mode.MATCHED and new.matched)):
                    continue
                went, came = new.delta
            else:
                before, after = self._counted(old, mode), self._counted(new, mode)
                if before is after:
                    continue
                went, came = before - after, after - before
            for address in went:
                n = counts[address] - 1
                if n:
                    counts[address] = n
                else:
                    del counts[address]
                    if address in added:
                        added.discard(address)
                    else:
                        removed.add(address)
            for address in came:
                n = counts.get(address, 0)
                counts[address] = n + 1
                if not n:
                    if address in removed:
                        removed.discard(address)
                    else:
                        added.add(address)
        return frozenset(added), frozenset(removed)

    def _recount(self, mode: Mode) -> tuple[frozenset[Address], frozenset[Address]]:
        """The mode changed (e.g. the first object listing the port arrived): count anew."""
        counts: dict[Address, int] = {}
        for _, part in self._parts.values():
            for address in self._counted(part, mode):
                counts[address] = counts.get(address, 0) + 1
        self._counts = counts
        now = frozenset(counts)
        return now - self._set, self._set - now
