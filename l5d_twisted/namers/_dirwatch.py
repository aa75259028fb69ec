"""Watching one directory for changed files with inotify (``twisted.internet.inotify``).

:func:`inotify_watcher` returns what ``FsNamer`` takes as its ``dir_watcher``: given a
directory and a callback, it starts one inotify watch on the directory and calls back with
the name of each file created, written, moved or removed there (``None`` when the event
names no single file).  It returns ``None`` where inotify cannot be used (not Linux, a
reactor without file descriptors such as a test's ``task.Clock``, no such directory, the
user's watch limit reached): the namer then polls.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorFDSet
from twisted.logger import Logger
from twisted.python.filepath import FilePath

log = Logger()

try:  # Linux only
    from twisted.internet import inotify
except ImportError:  # pragma: no cover - not Linux
    inotify = None  # type: ignore[assignment]


class InotifyWatch:
    """One inotify watch on a directory; :meth:`stop` releases its file descriptor."""

    def __init__(
        self,
        notifier: Any,
        on_change: Callable[[str | None], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._notifier = notifier
        self._on_change = on_change
        self._on_lost = on_lost
        self._stopped = False

    def event(self, _ignored: object, path: FilePath[Any], mask: int) -> None:
        if self._stopped:
            return
        assert inotify is not None
        if mask & (inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_IGNORED):
            self.stop()
            self._on_lost()
            return
        name = os.fsdecode(path.basename())
        try:
            self._on_change(name or None)
        except Exception:
            log.failure("io.l5d.fs: handling a change of {name} failed", name=name)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            notifier, self._notifier = self._notifier, None
            notifier.loseConnection()  # its watch points hold our event method: let go
            notifier._watchpoints.clear()


def inotify_watcher(
    reactor: Any, on_lost: Callable[[], None]
) -> Callable[[str, Callable[[str | None], None]], InotifyWatch | None]:
    """A ``dir_watcher`` on ``reactor``; ``on_lost()`` when a started watch stops working."""

    def start(root_dir: str, on_change: Callable[[str | None], None]) -> InotifyWatch | None:
        if inotify is None or not IReactorFDSet.providedBy(reactor) or not os.path.isdir(root_dir):
            return None
        try:
            make: Any = inotify.INotify  # untyped
            notifier: Any = make(reactor)
        except Exception as e:  # e.g. the inotify instance limit
            log.warn(
                "io.l5d.fs: no inotify ({error}); polling {root_dir}", error=e, root_dir=root_dir
            )
            return None
        watch = InotifyWatch(notifier, on_change, on_lost)
        mask = (
            inotify.IN_CREATE
            | inotify.IN_DELETE
            | inotify.IN_MODIFY
            | inotify.IN_CLOSE_WRITE
            | inotify.IN_MOVED_FROM
            | inotify.IN_MOVED_TO
            | inotify.IN_ATTRIB
            | inotify.IN_DELETE_SELF
            | inotify.IN_MOVE_SELF
        )
        try:
            notifier.startReading()
            notifier.watch(FilePath(os.fsencode(root_dir)), mask=mask, callbacks=[watch.event])
        except Exception as e:  # e.g. the watch limit (fs.inotify.max_user_watches)
            log.warn(
                "io.l5d.fs: cannot watch {root_dir} ({error}); polling", root_dir=root_dir, error=e
            )
            notifier.loseConnection()
            return None
        return watch

    return start
