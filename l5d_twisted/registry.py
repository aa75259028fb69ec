"""Plugins found by their config ``kind``.

Every pluggable concept (protocols, namers, identifiers, transformers, response classifiers,
balancers, failure accrual policies, telemeters) has one :class:`Registry`.  A plugin is a
module inside that concept's package which registers itself at import time::

    @dataclass(frozen=True)
    class FsNamerConfig:
        root_dir: str = knob(doc="directory with one file per service")

    @NAMERS.register("io.l5d.fs", FsNamerConfig)
    def make_fs_namer(config: FsNamerConfig, prefix: Path, ctx: PluginContext) -> Namer: ...

:func:`load_plugins` imports every module of the plugin packages, so adding a plugin is
adding a file: no core module lists the plugins.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from l5d_twisted.protocols.base import RouterProtocol

T = TypeVar("T")

# The packages whose modules are plugins.  Each is imported (recursively) by load_plugins().
PLUGIN_PACKAGES = (
    "l5d_twisted.namers",
    "l5d_twisted.transformers",
    "l5d_twisted.identifiers",
    "l5d_twisted.balancers",
    "l5d_twisted.resilience",
    "l5d_twisted.telemetry",
    "l5d_twisted.k8s",
    "l5d_twisted.protocols",
)


@dataclass(frozen=True)
class Plugin(Generic[T]):
    """One registered kind: its config schema (a frozen dataclass) and its factory."""

    kind: str
    config_type: type
    factory: Callable[..., T]
    category: str


class UnknownKind(KeyError):
    def __init__(self, category: str, kind: str, known: list[str]) -> None:
        super().__init__(kind)
        self.category = category
        self.kind = kind
        self.known = known

    def __str__(self) -> str:
        return f"unknown {self.category} kind {self.kind!r}; known kinds: {', '.join(self.known)}"


class Registry(Generic[T]):
    """Kind -> plugin for one category (e.g. "namer")."""

    def __init__(self, category: str) -> None:
        self.category = category
        self._plugins: dict[str, Plugin[T]] = {}

    def register(
        self, kind: str, config_type: type
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if kind in self._plugins and self._plugins[kind].factory is not factory:
                raise ValueError(f"{self.category} kind {kind!r} registered twice")
            self._plugins[kind] = Plugin(kind, config_type, factory, self.category)
            return factory

        return decorate

    def unregister(self, kind: str) -> None:
        """Forget ``kind`` (tests register plugins of their own for a while)."""
        self._plugins.pop(kind, None)

    def get(self, kind: str) -> Plugin[T]:
        load_plugins()
        try:
            return self._plugins[kind]
        except KeyError:
            raise UnknownKind(self.category, kind, sorted(self._plugins)) from None

    def kinds(self) -> list[str]:
        load_plugins()
        return sorted(self._plugins)

    def __contains__(self, kind: object) -> bool:
        load_plugins()
        return kind in self._plugins

    def __iter__(self) -> Iterator[Plugin[T]]:
        load_plugins()
        return iter(list(self._plugins.values()))


# One registry per pluggable concept.  The factories' signatures are documented where the
# concept's interface lives (naming.namer, identifiers.base, ...).
NAMERS: Registry[Any] = Registry("namer")
TRANSFORMERS: Registry[Any] = Registry("transformer")
IDENTIFIERS: Registry[Any] = Registry("identifier")
CLASSIFIERS: Registry[Any] = Registry("responseClassifier")
BALANCERS: Registry[Any] = Registry("loadBalancer")
FAILURE_ACCRUAL: Registry[Any] = Registry("failureAccrual")
BACKOFFS: Registry[Any] = Registry("backoff")
TELEMETERS: Registry[Any] = Registry("telemeter")
PROTOCOLS: Registry[RouterProtocol] = Registry("protocol")  # by routers[].protocol

_loaded = False


def load_plugins() -> None:
    """Import every module of the plugin packages (once), so that they register."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in PLUGIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            importlib.import_module(info.name)
