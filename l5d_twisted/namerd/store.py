"""Dtab storage: namespaces of versioned dtabs, written with compare-and-set.

Every storage kind meets :class:`DtabStore` (namerd's ``DtabStore``): ``list`` and
``observe`` are live views (:class:`~l5d_twisted.naming.var.Var`) that the HTTP
interface's watches and the interpreter follow; the writes answer with a Deferred so a
storage that keeps its dtabs elsewhere (Kubernetes) fits the same contract.

A version is opaque bytes, shown as base64 (the ETag of ``GET /api/1/dtabs/<ns>``):
``update(ns, dtab, version)`` writes only if ``version`` is the current one, else fails with
:class:`VersionMismatch` and changes nothing.  That is what makes two writers safe: both
read version v, both send ``If-Match: v``, exactly one wins.

``io.l5d.inMemory`` (:class:`InMemoryDtabStore`) keeps the dtabs in the process, for tests
and demos.  Its versions are 8-byte big-endian counters as namerd's are (version 1 is
``AAAAAAAAAAE=``), but from one counter for the whole store: namerd restarts a re-created
namespace at version 1, so a writer holding version 1 from before a delete and a create
would overwrite the new dtab; here a version is never reused while the process runs.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred, fail, succeed

from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.var import Var

# Namespaces one store keeps: each is a dtab in memory and a name in every list.
MAX_NAMESPACES = 1000
# A namespace is a name in URLs, file names and Kubernetes object names.
MAX_NAMESPACE_CHARS = 100
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class DtabStoreError(Exception):
    """A write the store refused; the message says why."""


class NamespaceExists(DtabStoreError):
    def __init__(self, ns: str) -> None:
        super().__init__(f"the dtab namespace {ns} already exists")


class NamespaceNotFound(DtabStoreError):
    def __init__(self, ns: str) -> None:
        super().__init__(f"the dtab namespace {ns} does not exist")


class VersionMismatch(DtabStoreError):
    def __init__(self, ns: str) -> None:
        super().__init__(f"the dtab {ns} changed since that version was read")


class StoreFull(DtabStoreError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the store already holds {limit} namespaces, its limit")


def namespace_problem(ns: str) -> str | None:
    """Why ``ns`` cannot name a dtab (None if it can)."""
    if not ns:
        return "a namespace cannot be empty"
    if len(ns) > MAX_NAMESPACE_CHARS:
        return f"a namespace has at most {MAX_NAMESPACE_CHARS} characters"
    if not _NAMESPACE.match(ns):
        return (
            "a namespace has only letters, digits, '.', '_' and '-', "
            f"and starts with a letter or digit: {ns[:40]!r}"
        )
    return None


@dataclass(frozen=True)
class VersionedDtab:
    dtab: Dtab
    version: bytes

    @property
    def version_text(self) -> str:
        return show_version(self.version)


def show_version(version: bytes) -> str:
    """A version as the ETag namerd sends: base64 of its bytes."""
    return base64.b64encode(version).decode("ascii")


def read_version(text: str) -> bytes | None:
    """An ``If-Match`` value back to version bytes (quotes and ``W/`` tolerated); None if
    it is not base64 (then it matches no version)."""
    text = text.strip()
    if text.startswith("W/"):
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


class DtabStore(Protocol):
    """What namerd's interfaces need from a storage kind."""

    def list(self) -> Var[frozenset[str]]:
        """The namespaces, live."""
        ...

    def get(self, ns: str) -> VersionedDtab | None:
        """The namespace's dtab now (None if there is none)."""
        ...

    def observe(self, ns: str) -> Var[VersionedDtab | None]:
        """The namespace's dtab, live (None while there is none)."""
        ...

    def create(self, ns: str, dtab: Dtab) -> Deferred[VersionedDtab]:
        """Fails with :class:`NamespaceExists` if ``ns`` has a dtab."""
        ...

    def update(self, ns: str, dtab: Dtab, version: bytes) -> Deferred[VersionedDtab]:
        """Fails with :class:`VersionMismatch` unless ``version`` is current, with
        :class:`NamespaceNotFound` if there is no dtab."""
        ...

    def put(self, ns: str, dtab: Dtab) -> Deferred[VersionedDtab]:
        """Writes whatever the current version (creating the namespace if needed)."""
        ...

    def delete(self, ns: str) -> Deferred[None]:
        """Fails with :class:`NamespaceNotFound` if there is no dtab."""
        ...


class _NamespaceVar(Var["VersionedDtab | None"]):
    """One namespace's dtab; forgotten by the store once it is gone and nobody watches."""

    def __init__(self, store: InMemoryDtabStore, ns: str, value: VersionedDtab | None) -> None:
        super().__init__(value)
        self._store = store
        self._ns = ns

    def _on_last_observer_gone(self) -> None:
        self._store._forget(self._ns, self)


class InMemoryDtabStore:
    """``io.l5d.inMemory``: the dtabs live in this process (lost when it stops).

    Every method runs to completion on the reactor thread, so a compare-and-set is atomic
    without locks.
    """

    def __init__(
        self, namespaces: dict[str, Dtab] | None = None, max_namespaces: int = MAX_NAMESPACES
    ) -> None:
        self._counter = 0
        self._max = max_namespaces
        self._vars: dict[str, _NamespaceVar] = {}
        self._names: Var[frozenset[str]] = Var(frozenset())
        for ns, dtab in (namespaces or {}).items():
            self._var(ns).update(self._next(dtab))
        self._publish_names()

    # --- reads -------------------------------------------------------------------------
    def list(self) -> Var[frozenset[str]]:
        return self._names

    def get(self, ns: str) -> VersionedDtab | None:
        var = self._vars.get(ns)
        return var.sample() if var is not None else None

    def observe(self, ns: str) -> Var[VersionedDtab | None]:
        return self._var(ns)

    # --- writes ------------------------------------------------------------------------
    def create(self, ns: str, dtab: Dtab) -> Deferred[VersionedDtab]:
        if self.get(ns) is not None:
            return fail(NamespaceExists(ns))
        return self._write(ns, dtab)

    def update(self, ns: str, dtab: Dtab, version: bytes) -> Deferred[VersionedDtab]:
        current = self.get(ns)
        if current is None:
            return fail(NamespaceNotFound(ns))
        if current.version != version:
            return fail(VersionMismatch(ns))
        return self._write(ns, dtab)

    def put(self, ns: str, dtab: Dtab) -> Deferred[VersionedDtab]:
        return self._write(ns, dtab)

    def delete(self, ns: str) -> Deferred[None]:
        var = self._vars.get(ns)
        if var is None or var.sample() is None:
            return fail(NamespaceNotFound(ns))
        var.update(None)
        if not var.observed:
            self._vars.pop(ns, None)
        self._publish_names()
        return succeed(None)

    # --- internals ---------------------------------------------------------------------
    def _write(self, ns: str, dtab: Dtab) -> Deferred[VersionedDtab]:
        if self.get(ns) is None and len(self._names.sample()) >= self._max:
            return fail(StoreFull(self._max))
        versioned = self._next(dtab)
        self._var(ns).update(versioned)
        self._publish_names()
        return succeed(versioned)

    def _next(self, dtab: Dtab) -> VersionedDtab:
        self._counter += 1
        return VersionedDtab(dtab, struct.pack(">Q", self._counter))

    def _var(self, ns: str) -> _NamespaceVar:
        var = self._vars.get(ns)
        if var is None:
            var = _NamespaceVar(self, ns, None)
            self._vars[ns] = var
        return var

    def _forget(self, ns: str, var: _NamespaceVar) -> None:
        if self._vars.get(ns) is var and var.sample() is None:
            del self._vars[ns]

    def _publish_names(self) -> None:
        self._names.update(frozenset(ns for ns, v in self._vars.items() if v.sample() is not None))
