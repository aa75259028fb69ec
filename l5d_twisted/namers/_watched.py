"""A source var that tells its owner when it starts and stops being observed.

Namers use it to watch (poll a file, run a DNS refresh) only the names somebody is
currently using.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from l5d_twisted.naming.var import Closable, Var

T = TypeVar("T")


class WatchedVar(Var[T]):
    __slots__ = ("_on_watch", "_on_sample")

    def __init__(
        self,
        value: T,
        on_watch: Callable[[bool], None],
        on_sample: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(value)
        self._on_watch = on_watch
        self._on_sample = on_sample

    def sample(self) -> T:
        # Unobserved, nobody keeps the value fresh: let the owner refresh it first.
        if not self.observed and self._on_sample is not None:
            self._on_sample()
        return self._value

    def observe(self, fn: Callable[[T], None]) -> Closable:
        if not self.observed and self._on_sample is not None:
            self._on_sample()  # fresh before the first observer sees it
        return super().observe(fn)

    def detach(self) -> None:
        """Forget the owner's callbacks (they hold the owner, which holds this var: a
        cycle); for an owner letting go of a var nobody else holds."""
        self._on_watch = _ignore
        self._on_sample = None

    def _on_first_observer(self) -> None:
        self._on_watch(True)

    def _on_last_observer_gone(self) -> None:
        self._on_watch(False)


def _ignore(_watched: bool) -> None:
    pass
