"""``io.l5d.memory``: a namer whose names live in memory, for tests and demos.

Config: ``names: {hello: ["127.0.0.1:8080", "127.0.0.1:8081 * 2"], default/http/world: []}``
(a name may have several segments; an entry is ``host:port`` or ``host port``, optionally
``* weight``).  ``/#/<prefix>/<name>/<rest>`` binds to the longest configured name that
prefixes the path.  Python code (tests) changes names at run time with
:meth:`MemoryNamer.set_addresses`, :meth:`set_pending`, :meth:`set_failed` and
:meth:`remove`; every bound tree that uses a name follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.namers._addrlines import parse_address_line
from l5d_twisted.naming.addr import ADDR_PENDING, Addr, AddrBound, Address, AddrFailed, BoundName
from l5d_twisted.naming.addrshow import addr_json
from l5d_twisted.naming.nametree import NEG, Leaf, NameTree
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, State, Var
from l5d_twisted.registry import NAMERS

AddressLike = Address | str


def _name_path(name: str | Path) -> Path:
    if isinstance(name, Path):
        return name
    text = name if name.startswith("/") else "/" + name
    return Path.read(text)


def _address(a: AddressLike) -> Address:
    return a if isinstance(a, Address) else parse_address_line(a)


@dataclass(frozen=True)
class MemoryNamerConfig:
    names: dict[str, tuple[str, ...]] = knob(
        default_factory=dict, doc="name -> list of 'host:port [* weight]'"
    )

    def __post_init__(self) -> None:
        for name, entries in self.names.items():
            try:
                _name_path(name)
            except ValueError as e:
                raise ValueError(f"names.{name}: not a name: {e}") from None
            for entry in entries:
                try:
                    _address(entry)
                except ValueError as e:
                    raise ValueError(f"names.{name}: {entry!r}: {e}") from None


class _Entry:
    def __init__(self, id: Path, addr: Addr) -> None:
        self.addr: Var[Addr] = Var(addr)
        self.bound = BoundName(id, self.addr)


class MemoryNamer:
    def __init__(
        self,
        prefix: Path,
        names: Mapping[str, Iterable[AddressLike]]
        | Mapping[Path, Iterable[AddressLike]]
        | None = None,
    ) -> None:
        self.prefix = prefix
        self.id_prefix = Path.of("#") + prefix
        self._entries: dict[Path, _Entry] = {}
        # Which names exist: changes when names are added or removed, not on address changes.
        self._table: Var[frozenset[Path]] = Var(frozenset())
        for name, addresses in (names or {}).items():
            self.set_addresses(name, addresses)

    # --- changing names at run time ---------------------------------------------------
    def set_addresses(self, name: str | Path, addresses: Iterable[AddressLike]) -> None:
        self._set(_name_path(name), AddrBound.of(_address(a) for a in addresses))

    def set_pending(self, name: str | Path) -> None:
        self._set(_name_path(name), ADDR_PENDING)

    def set_failed(self, name: str | Path, reason: str) -> None:
        self._set(_name_path(name), AddrFailed(reason))

    def remove(self, name: str | Path) -> None:
        path = _name_path(name)
        if self._entries.pop(path, None) is not None:
            self._table.update(frozenset(self._entries))

    def _set(self, path: Path, addr: Addr) -> None:
        entry = self._entries.get(path)
        if entry is None:
            self._entries[path] = _Entry(self.id_prefix + path, addr)
            self._table.update(frozenset(self._entries))
        else:
            entry.addr.update(addr)

    # --- Namer ------------------------------------------------------------------------
    def lookup(self, path: Path) -> Var[State]:
        def resolve(names: frozenset[Path]) -> State:
            for n in range(len(path), 0, -1):
                candidate = path.take(n)
                if candidate in names:
                    entry = self._entries[candidate]
                    residual = path.drop(n)
                    tree: NameTree[BoundName] = Leaf(
                        entry.bound
                        if residual.is_empty
                        else BoundName(entry.bound.id, entry.addr, residual)
                    )
                    return Ok(tree)
            return Ok(NEG)

        return self._table.map(resolve)

    def state(self) -> dict[str, Any]:
        return {
            "names": {
                path.show(): {"id": e.bound.id.show(), "addr": addr_json(e.addr.sample())}
                for path, e in sorted(self._entries.items(), key=lambda kv: kv[0].show())
            }
        }


@NAMERS.register("io.l5d.memory", MemoryNamerConfig)
def make_memory_namer(config: MemoryNamerConfig, prefix: Path, ctx: PluginContext) -> MemoryNamer:
    return MemoryNamer(prefix, dict(config.names))
