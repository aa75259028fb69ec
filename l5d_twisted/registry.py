"""Plugins found by their config ``kind``.

Every pluggable concept (protocols, namers, identifiers, transformers, response classifiers,
balancers, failure accrual policies, telemeters) has one :class:`Registry`.  A plugin is a
module inside that concept's package which registers itself at import time::

    @dataclass(frozen=True)
    class FsNamerConfig:
        root_dir: str = knob(doc="directory with one file per service")

    @NAMERS.register("io.l5d.fs", FsNamerConfig)
    def make_fs_namer(config: FsNamerConfig, prefix: Path, ctx: PluginContext) -> Namer: ...

Adding a plugin is adding a file: no core module lists the plugins.  A kind's module is
imported when the kind is first asked for (``get``), found by an index of the plugin
packages' sources (``@REGISTRY.register("kind"`` lines, read once, nothing imported): a
config that names only plain-HTTP plugins never imports the Kubernetes client, Prometheus'
client library or TLS support, which keeps the process small and quick to start
(bench/README.md).  ``kinds()``, ``in`` and the unknown-kind message use the index too;
iterating a registry (the config reference) and :func:`load_all_plugins` import every plugin.
Where the index cannot see every module's source (a compiled module without its ``.py``),
a miss falls back to importing them all.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
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
        plugin = self._plugins.get(kind)
        if plugin is None:
            _import_kind(self.category, kind)
            plugin = self._plugins.get(kind)
            if plugin is None:
                raise UnknownKind(self.category, kind, self.kinds())
        return plugin

    def kinds(self) -> list[str]:
        indexed = _indexed_kinds(self.category)
        if indexed is None:
            load_all_plugins()
            indexed = set()
        return sorted(indexed.union(self._plugins))

    def __contains__(self, kind: object) -> bool:
        return kind in self._plugins or kind in self.kinds()

    def __iter__(self) -> Iterator[Plugin[T]]:
        load_all_plugins()
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

REGISTRIES: dict[str, Registry[Any]] = {
    name: value for name, value in list(globals().items()) if isinstance(value, Registry)
}

# A registration as the plugin modules write it: a decorator at the start of a line.
_REGISTRATION = re.compile(r'^@([A-Z_]+)\.register\(\s*"([^"]+)"', re.MULTILINE)

# category -> kind -> module; None: some plugin module's source could not be read
_index: dict[str, dict[str, str]] | None = None
_indexed = False
_all_loaded = False


def _plugin_modules() -> Iterator[tuple[str, str | None]]:
    """(module name, its source file or None) for every plugin module; imports nothing."""
    for package_name in PLUGIN_PACKAGES:
        spec = importlib.util.find_spec(package_name)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        for info in pkgutil.iter_modules(locations, package_name + "."):
            if info.name.rsplit(".", 1)[-1].startswith("_"):
                continue
            path = getattr(info.module_finder, "path", None)
            source = os.path.join(path, info.name.rsplit(".", 1)[-1] + ".py") if path else None
            yield info.name, source if source and os.path.isfile(source) else None


def plugin_index() -> dict[str, dict[str, str]] | None:
    """category -> kind -> the module registering it, from the plugin modules' sources."""
    global _index, _indexed
    if not _indexed:
        _indexed = True
        index: dict[str, dict[str, str]] | None = {}
        for module, source in _plugin_modules():
            try:
                with open(source or "", encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                index = None  # compiled, or unreadable: the index would be incomplete
                break
            for registry_name, kind in _REGISTRATION.findall(text):
                registry = REGISTRIES.get(registry_name)
                if registry is not None and index is not None:
                    index.setdefault(registry.category, {})[kind] = module
        _index = index
    return _index


def _indexed_kinds(category: str) -> set[str] | None:
    index = plugin_index()
    return None if index is None else set(index.get(category, {}))


def _import_kind(category: str, kind: str) -> None:
    """Import the module registering ``kind``; every plugin module if the index lacks it."""
    module = (plugin_index() or {}).get(category, {}).get(kind)
    if module is not None:
        importlib.import_module(module)
    else:
        load_all_plugins()


def load_plugins() -> None:
    """Ready the registries: index the plugins (each kind's module is imported on first use)."""
    plugin_index()


def load_all_plugins() -> None:
    """Import every module of the plugin packages (once), so that they all register."""
    global _all_loaded
    if _all_loaded:
        return
    _all_loaded = True
    for module, _ in _plugin_modules():
        importlib.import_module(module)
