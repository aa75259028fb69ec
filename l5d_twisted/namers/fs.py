"""``io.l5d.fs``: service discovery from a directory, one file per service.

``/#/io.l5d.fs/hello`` reads ``<rootDir>/hello``: each line ``ip port`` or
``ip port * weight``; ``#`` starts a comment.  A missing file is negative (the dtab falls
back), an empty file is an existing service with no addresses.  A malformed line is logged
with ``file:line`` and skipped.  As in linkerd 1, a relative ``rootDir`` is relative to the
process's working directory (not the config file's), and a ``rootDir`` that is not an
existing directory is refused when the config is loaded (``check`` reports it).

Changes are picked up live while anyone observes a name.  Where the kernel offers inotify
(Linux, through ``twisted.internet.inotify``), the directory is watched once and only the
file an event names is looked at again: no work per tick however many names are watched
(issue 17: polling 5,000 names cost 14 % of a core while idle).  Elsewhere, or when the
watch cannot be set up (no rootDir yet, no inotify), every watched file is checked every
``pollIntervalMs`` (default 500 ms).  A file is re-read when its size, mtime or inode
changed (or, for a couple of seconds after a change, whatever they say: timestamps are
coarse).  An event that names no single file (a Kubernetes ConfigMap's ``..data`` swap,
an unknown name) re-checks every watched name.  Nothing is watched for names nobody uses.

Names looked up but not observed (unknown Host values, routes expired) stay cached up to
``maxIdleNames``, the least recently used going first.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from l5d_twisted.config.schema import knob
from l5d_twisted.context import PluginContext
from l5d_twisted.namers._addrlines import LineError, parse_address_lines
from l5d_twisted.namers._dirwatch import inotify_watcher
from l5d_twisted.naming.addr import ADDR_NEG, Addr, AddrBound, BoundName
from l5d_twisted.naming.addrshow import addr_json
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Closable, Ok, State, Var, activity_map
from l5d_twisted.registry import NAMERS

log = Logger()

# Keep at most this many unobserved names cached by default (``maxIdleNames``: a flood of
# unknown Host headers must not grow memory without bound). Observed names are not
# counted: the route caches that observe them are bounded themselves.
_MAX_IDLE_ENTRIES = 1000


class DirWatch(Protocol):
    def stop(self) -> None: ...


# (rootDir, on_change(name or None for "anything may have changed")) -> a running watch,
# or None where the directory cannot be watched (then the namer polls).
DirWatcher = Callable[[str, Callable[[str | None], None]], DirWatch | None]


@dataclass(frozen=True)
class FsNamerConfig:
    root_dir: str = knob(
        doc="existing directory with one file per service name (a relative path is relative to "
        "the working directory, as in linkerd 1; checked when the config is loaded)"
    )
    poll_interval_ms: int = knob(
        500,
        minimum=10,
        doc="how often watched files are checked for changes where inotify is not available",
    )
    max_idle_names: int = knob(
        _MAX_IDLE_ENTRIES,
        minimum=0,
        doc="names kept cached while nobody observes them (unknown names, expired routes); "
        "observed names are not counted",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.root_dir, str) or not self.root_dir:
            raise ValueError("rootDir is required: the directory with one file per service")
        # linkerd 1's rootDir is a Directory: a relative path resolves against the working
        # directory, and one that is not a directory fails the config's parse.
        if not os.path.isdir(os.path.expanduser(self.root_dir)):
            raise ValueError(
                f"rootDir: {self.root_dir!r} is not a directory"
                f" (a relative rootDir is relative to the working directory {os.getcwd()!r})"
            )


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


# File timestamps are coarse (the kernel's clock tick): a write landing in the same tick as
# our read, keeping inode and size, leaves the signature unchanged.  Until a file's mtime is
# this much older than our read, its content is compared too (as git does for "racily
# clean" files).
_RACY_NS = 2_000_000_000


T = TypeVar("T")

_NO_ERRORS: list[LineError] = []  # shared, never appended to: a file without bad lines


class _Forgotten:
    """Where a var of a forgotten entry finds its name again (see :meth:`_Name.forget`)."""

    __slots__ = ("namer", "name", "mirror")

    def __init__(self, namer: FsNamer, name: str) -> None:
        self.namer = namer
        self.name = name
        self.mirror: Closable | None = None  # observing the name's current var


class _EntryVar(Var[T]):
    """A name's var: observed, it has its entry watch the file; sampled unobserved, it has
    the entry re-read it first.  It calls the entry itself (a :class:`WatchedVar` holds two
    bound methods: four per name; issue 17).

    Once the namer has forgotten its entry (:meth:`_Name.forget`), a var someone still
    holds (a route cache, for a moment) follows the namer's current entry of that name:
    sampled, it takes that entry's value; observed, it mirrors that entry's var for as long
    as it is observed.  So a forgotten entry's var neither goes stale nor keeps the entry
    in a reference cycle with it.
    """

    __slots__ = ("_entry",)

    _kind = ""  # which var of the entry this is: "addr" or "tree"

    def __init__(self, value: T, entry: _Name) -> None:
        super().__init__(value)
        self._entry: _Name | _Forgotten = entry

    def _current(self, forgotten: _Forgotten) -> Var[T]:
        entry = forgotten.namer._entry(forgotten.name)
        var: Var[T] = getattr(entry, self._kind)
        return var

    def sample(self) -> T:
        if not self.observed:  # nobody keeps the value fresh
            entry = self._entry
            if isinstance(entry, _Forgotten):
                self.update(self._current(entry).sample())
            else:
                entry.refresh()
        return self._value

    def observe(self, fn: Callable[[T], None]) -> Closable:
        if not self.observed:  # fresh before the first observer sees it
            entry = self._entry
            if isinstance(entry, _Forgotten):
                if entry.mirror is None:
                    entry.mirror = self._current(entry).observe(self.update)
            else:
                entry.refresh()
        return super().observe(fn)

    def forget(self, namer: FsNamer, name: str) -> None:
        """Its entry is forgotten: let go of it (it holds this var: a cycle)."""
        self._entry = _Forgotten(namer, name)

    def _on_first_observer(self) -> None:
        entry = self._entry
        if not isinstance(entry, _Forgotten):
            entry._watch(True)

    def _on_last_observer_gone(self) -> None:
        entry = self._entry
        if isinstance(entry, _Forgotten):
            mirror, entry.mirror = entry.mirror, None
            if mirror is not None:
                mirror.close()
        else:
            entry._watch(False)


class _AddrVar(_EntryVar[Addr]):
    __slots__ = ()
    _kind = "addr"


class _TreeVar(_EntryVar[State]):
    __slots__ = ()
    _kind = "tree"


class _Name:
    """What the namer knows about one service file, shared by all lookups of it."""

    __slots__ = (
        "namer",
        "name",
        "watchers",
        "signature",
        "text",
        "racy",
        "errors",
        "addr",
        "bound",
        "tree",
        "__weakref__",
    )

    def __init__(self, namer: FsNamer, name: str) -> None:
        self.namer = namer
        self.name = name
        self.watchers = 0
        self.signature: tuple[int, int, int] | None = None
        self.text: str | None = None  # the content last parsed
        self.racy = False  # the signature alone cannot tell a change yet (see _RACY_NS)
        self.errors: list[LineError] = _NO_ERRORS
        self.addr: _EntryVar[Addr] = _AddrVar(ADDR_NEG, self)
        self.bound = BoundName(namer.id_prefix + Path.of(name), self.addr)
        self.tree: _EntryVar[State] = _TreeVar(Ok(NEG), self)
        self.refresh()

    @property
    def file(self) -> str:
        return os.path.join(self.namer.root_dir, self.name)

    def forget(self) -> None:
        """The namer lets go of this idle entry: its vars let go of it too, so that it is
        freed now by reference counting, not at the next full collection of the heap
        (issue 17: each var calls back its entry, a cycle; thousands of forgotten names'
        entries were garbage that only a full GC freed).  A var still held elsewhere
        follows the name's current entry from then on (see :class:`_EntryVar`)."""
        self.addr.forget(self.namer, self.name)
        self.tree.forget(self.namer, self.name)

    def _watch(self, on: bool) -> None:
        self.watchers += 1 if on else -1
        self.namer._watching_changed(self)

    @property
    def watched(self) -> bool:
        return self.watchers > 0

    def refresh(self) -> None:
        """Re-read the file if it changed since the last look."""
        file = self.file
        try:
            st = os.stat(file)
        except OSError:
            self._negative(None)
            return
        signature = _signature(st)
        if signature == self.signature and not self.racy:
            return
        try:
            with open(file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:  # e.g. a directory or unreadable: treat like missing, say why
            log.warn("io.l5d.fs: cannot read {file}: {error}", file=file, error=str(e))
            self._negative(signature)
            return
        self.racy = st.st_mtime_ns >= time.time_ns() - _RACY_NS
        self.signature = signature
        if text == self.text:
            return  # touched or rewritten with the same content: nothing to tell anyone
        self.text = text
        addresses, errors = parse_address_lines(text)
        self.errors = errors or _NO_ERRORS
        for error in self.errors:
            log.warn("io.l5d.fs: skipping bad line {where}", where=error.show(file))
        self.addr.update(AddrBound.of(addresses))
        self.tree.update(Ok(Leaf(self.bound)))

    def _negative(self, signature: tuple[int, int, int] | None) -> None:
        """No usable file (missing, or unreadable with this signature): the name is negative."""
        self.signature = signature
        self.text = None
        self.racy = False
        self.errors = _NO_ERRORS
        self.addr.update(ADDR_NEG)
        self.tree.update(Ok(NEG))


class FsNamer:
    def __init__(
        self,
        root_dir: str,
        prefix: Path,
        clock: Any,
        poll_interval_s: float = 0.5,
        *,
        max_idle: int = _MAX_IDLE_ENTRIES,
        dir_watcher: DirWatcher | None = None,
    ) -> None:
        self.root_dir = root_dir
        self.prefix = prefix
        self.id_prefix = Path.of("#") + prefix
        self._clock = clock
        self._poll_interval_s = poll_interval_s
        self._max_idle = max_idle
        self._dir_watcher = dir_watcher
        self._dir_watch: DirWatch | None = None
        self._names: dict[str, _Name] = {}
        # The names of ``_names`` entries nobody observes, least recently used first: the
        # ones a new name may push out, found without scanning the observed ones.
        self._idle: OrderedDict[str, None] = OrderedDict()
        # Polled apart from ``_names``: an entry pruned from that cache while idle may
        # still be held (e.g. by a route cache) and observed again later.
        self._watched: set[_Name] = set()
        self._shadowed: dict[str, set[_Name]] = {}  # watched, pruned, name taken since
        self._poller: LoopingCall | None = None
        if not os.path.isdir(root_dir):
            log.warn(
                "io.l5d.fs: rootDir {root_dir} is not a directory (yet); every name is negative until it is",
                root_dir=root_dir,
            )

    def lookup(self, path: Path) -> Var[State]:
        if path.is_empty:
            return Var(Ok(NEG))
        name = path[0]
        if name in (".", "..") or "/" in name or "\0" in name or name.startswith("."):
            return Var(Ok(NEG))
        entry = self._entry(name)
        residual = path.drop(1)
        if residual.is_empty:
            return entry.tree
        with_residual = BoundName(entry.bound.id, entry.addr, residual)
        return activity_map(
            entry.tree, lambda tree: Leaf(with_residual) if isinstance(tree, Leaf) else tree
        )

    def _entry(self, name: str) -> _Name:
        entry = self._names.get(name)
        if entry is None:
            entry = self._names[name] = _Name(self, name)
            if not entry.watched:
                self._mark_idle(name)
        elif name in self._idle:
            self._idle.move_to_end(name)
        return entry

    def _mark_idle(self, name: str) -> None:
        """O(1) per call: a flood of new names must not cost a scan of the cache each."""
        self._idle[name] = None
        self._idle.move_to_end(name)
        while len(self._idle) > self._max_idle:
            oldest, _ = self._idle.popitem(last=False)
            self._names.pop(oldest).forget()

    def _watching_changed(self, entry: _Name) -> None:
        if entry.watched:
            self._watched.add(entry)
            # Adopt it back if it was pruned while idle, so that later lookups share it.
            if self._names.setdefault(entry.name, entry) is entry:
                self._idle.pop(entry.name, None)
            else:  # another entry has its name now: found apart by the directory watch
                self._shadowed.setdefault(entry.name, set()).add(entry)
        else:
            self._watched.discard(entry)
            shadowed = self._shadowed.get(entry.name)
            if shadowed is not None:
                shadowed.discard(entry)
                if not shadowed:
                    del self._shadowed[entry.name]
            if self._names.get(entry.name) is entry:
                self._mark_idle(entry.name)
        watching = bool(self._watched)
        if watching and self._dir_watch is None and self._poller is None:
            self._start_watching()
        elif not watching:
            self._stop_watching()

    def _start_watching(self) -> None:
        if self._dir_watcher is not None:
            try:
                self._dir_watch = self._dir_watcher(self.root_dir, self._changed)
            except Exception:
                log.failure("io.l5d.fs: watching {root_dir} failed", root_dir=self.root_dir)
            if self._dir_watch is not None:
                self.poll()  # what changed before the watch began
                return
        self._poller = LoopingCall(self.poll)
        self._poller.clock = self._clock
        self._poller.start(self._poll_interval_s, now=False)

    def _stop_watching(self) -> None:
        watch, self._dir_watch = self._dir_watch, None
        if watch is not None:
            watch.stop()
        poller, self._poller = self._poller, None
        if poller is not None and poller.running:
            poller.stop()

    def _changed(self, name: str | None) -> None:
        """The directory watch saw ``name`` change (``None``: anything may have)."""
        if name is None or name.startswith(".."):
            self.poll()
            return
        entry = self._names.get(name)
        entries = [entry] if entry is not None and entry.watched else []
        entries.extend(self._shadowed.get(name, ()))
        for watched in entries:
            try:
                watched.refresh()
            except Exception:
                log.failure("io.l5d.fs: refreshing {file} failed", file=watched.file)

    def watch_lost(self) -> None:
        """The directory watch stopped working (rootDir removed or moved): poll instead."""
        self._dir_watch = None
        if self._watched and self._poller is None:
            self.poll()
            self._poller = LoopingCall(self.poll)
            self._poller.clock = self._clock
            self._poller.start(self._poll_interval_s, now=False)

    def poll(self) -> None:
        """Check every watched name's file once."""
        for entry in list(self._watched):
            try:
                entry.refresh()
            except Exception:  # never let one file stop the poller
                log.failure("io.l5d.fs: refreshing {file} failed", file=entry.file)

    def state(self) -> dict[str, Any]:
        """Every service file in rootDir with its addresses (``/namer_state``)."""
        names: dict[str, Any] = {}
        try:
            files = sorted(f for f in os.listdir(self.root_dir) if not f.startswith("."))
        except OSError as e:
            return {"rootDir": self.root_dir, "error": str(e), "names": names}
        for name in files:
            if not os.path.isfile(os.path.join(self.root_dir, name)):
                continue
            cached = self._names.get(name)
            entry = cached or _Name(self, name)
            if not entry.watched:
                entry.refresh()
            names[name] = {
                "id": entry.bound.id.show(),
                "watched": entry.watched,
                "addr": addr_json(entry.addr.sample()),
                "errors": [e.show(name) for e in entry.errors],
            }
            if cached is None:
                entry.forget()  # read for this page only: no cycle left behind
        return {"rootDir": self.root_dir, "names": names}


@NAMERS.register("io.l5d.fs", FsNamerConfig)
def make_fs_namer(config: FsNamerConfig, prefix: Path, ctx: PluginContext) -> FsNamer:
    # Relative to the working directory, as in linkerd 1 (not to ctx.config_dir).
    root = os.path.abspath(os.path.expanduser(config.root_dir))
    lost: list[FsNamer] = []
    namer = FsNamer(
        root,
        prefix,
        ctx.reactor,
        config.poll_interval_ms / 1000.0,
        max_idle=config.max_idle_names,
        dir_watcher=inotify_watcher(ctx.reactor, lambda: lost[0].watch_lost()),
    )
    lost.append(namer)
    return namer
