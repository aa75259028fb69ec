"""Names from client input cannot grow the namer without bound."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from l5d_twisted.context import PluginContext
from l5d_twisted.k8s import namer as namer_module
from l5d_twisted.k8s.access import ApiAccess
from l5d_twisted.k8s.api import KubernetesApi
from l5d_twisted.k8s.namer import K8sNamer
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import PENDING, Failed


def make_namer() -> K8sNamer:
    reactor = MemoryReactorClock()
    api = KubernetesApi(reactor, ApiAccess("http://127.0.0.1:1"))
    return K8sNamer(api, Path.read("/io.l5d.k8s"), reactor, PluginContext(reactor))


def test_namespace_watches_are_capped(monkeypatch):
    monkeypatch.setattr(namer_module, "MAX_NAMESPACES", 2)
    namer = make_namer()
    assert namer.lookup(Path.read("/a/http/web")).sample() == PENDING
    assert namer.lookup(Path.read("/b/http/web")).sample() == PENDING
    state = namer.lookup(Path.read("/c/http/web")).sample()
    assert isinstance(state, Failed) and "at most 2 namespaces" in str(state.error)
    assert (
        namer.lookup(Path.read("/a/http/other")).sample() == PENDING
    )  # known namespaces still work
    assert set(namer.state()["namespaces"]) == {"a", "b"}
    namer.close()


def test_unobserved_names_are_pruned_observed_ones_kept(monkeypatch):
    monkeypatch.setattr(namer_module, "MAX_NAMES", 3)
    namer = make_namer()
    kept = namer.lookup(Path.read("/default/http/kept"))
    observer = kept.observe(lambda _state: None)
    for i in range(10):
        namer.lookup(Path.read(f"/default/http/random-{i}"))
    assert len(namer._names) <= 3
    assert namer.lookup(Path.read("/default/http/kept")) is kept
    observer.close()
    namer.close()
