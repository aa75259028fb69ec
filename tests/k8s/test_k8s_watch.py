"""The io.l5d.k8s namer against a fake API on 127.0.0.1: live changes and API faults.

Each test observes a name's address var and records every value it takes, so "no known
endpoint lost" is checked on the whole history, not only on the final state.
"""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from k8s_fake_api import ENDPOINTS, SERVICES, SLICES, FakeApi, endpoint, service_obj, slice_obj
from k8s_watch_helpers import Watched, eventually
from twisted.internet import reactor

from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.access import ApiAccess
from l5d_twisted.k8s.api import KubernetesApi
from l5d_twisted.k8s.namer import K8sNamer
from l5d_twisted.k8s.watcher import WatchSettings
from l5d_twisted.naming.nametree import NEG
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok

FAST = WatchSettings(
    watch_timeout_s=60, idle_timeout_s=5.0, resync_s=0, backoff_base_s=0.05, backoff_max_s=0.4
)


def make_namer(
    api: FakeApi,
    settings: WatchSettings = FAST,
    label_selector: str | None = None,
    timeout_s: float = 2.0,
) -> K8sNamer:
    k8s = KubernetesApi(reactor, ApiAccess(api.base_url), request_timeout_s=timeout_s)
    return K8sNamer(
        k8s,
        Path.read("/io.l5d.k8s"),
        reactor,
        PluginContext(reactor),
        label_selector=label_selector,
        settings=settings,
    )


def fixture() -> FakeApi:
    api = FakeApi()
    api.listen()
    return api


@pytest_twisted.ensureDeferred
async def test_add_scale_remove_and_not_ready_within_a_second():
    api = fixture()
    namer = make_namer(api)
    try:
        api.set_service(
            "default", "web", [endpoint("10.0.0.1", "n1"), endpoint("10.0.0.2", "n1", ready=False)]
        )
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080"), what="first list")
        (only,) = web.addrs[-1].addresses
        assert only.node_name == "n1"
        # readiness and scale-up
        api.set_service("default", "web", [endpoint(f"10.0.0.{i}", "n1") for i in (1, 2, 3, 4)])
        await eventually(
            lambda: web.shows("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080")
        )
        # removal is seen within 1 s of the API reporting it
        started = time.monotonic()
        api.set_service("default", "web", [endpoint("10.0.0.4", "n1")])
        await eventually(lambda: web.shows("10.0.0.4:8080"), timeout=1.0, what="removal within 1 s")
        assert time.monotonic() - started < 1.0
        # the name goes negative when the service's endpoints disappear
        api.delete(SLICES, "default", "web-abcde")
        await eventually(lambda: web.trees[-1] == Ok(NEG), what="deleted service negative")
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_unknown_service_unknown_port_and_empty_service():
    api = fixture()
    namer = make_namer(api)
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")])
        api.set_service("default", "idle", [endpoint("10.0.0.9", ready=False)])
        ghost = Watched(namer, "/default/http/ghost")
        bad_port = Watched(namer, "/default/grpc/web")
        idle = Watched(namer, "/default/http/idle")
        await eventually(
            lambda: ghost.trees[-1] == Ok(NEG) and bad_port.trees[-1] == Ok(NEG) and idle.shows()
        )
        # the unknown service appears: the name turns into a leaf
        api.set_service("default", "ghost", [endpoint("10.0.0.7")])
        await eventually(lambda: ghost.shows("10.0.0.7:8080"))
        # one watch per namespace, shared by all names
        assert api.watch_count(SLICES) == 1
        state = namer.state()["namespaces"]["default"]
        assert state["resource"] == "endpointslices" and state["connection"] == "watching"
        assert state["services"]["web"] == {"http": ["10.0.0.1:8080"]}
        assert state["resourceVersion"] == str(
            max(e.rv for e in api.events if e.resource == SLICES)
        )
        # names that cannot be Kubernetes names are negative without any API call
        assert namer.lookup(Path.read("/default/http")).sample() == Ok(NEG)
        assert namer.lookup(Path.read("/Bad_NS/http/web")).sample() == Ok(NEG)
    finally:
        namer.close()
        await api.stop()


@pytest.mark.parametrize("as_event", [False, True], ids=["http-410", "error-event-410"])
@pytest_twisted.ensureDeferred
async def test_410_gone_relists_without_flapping(as_event):
    api = fixture()
    api.faults.gone_as_event = as_event
    namer = make_namer(api)
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1"), endpoint("10.0.0.2")])
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080", "10.0.0.2:8080") and api.watchers)
        api.set_service("default", "other", [endpoint("10.0.0.99")])  # history moves on
        lists_before = sum(1 for p, q in api.requests if "watch" not in q)
        # history is compacted and the connection drops: the resume must get 410
        api.compact()
        api.drop_watches()
        api.set_service("default", "web", [endpoint("10.0.0.2"), endpoint("10.0.0.3")])
        await eventually(
            lambda: web.shows("10.0.0.2:8080", "10.0.0.3:8080"),
            what=f"re-list after 410 (as event: {as_event})",
        )
        assert sum(1 for p, q in api.requests if "watch" not in q) > lists_before, api.requests
        assert all(h for h in web.history()), f"flapped to empty: {web.history()}"
        # and the watch goes on from the new list
        api.set_service("default", "web", [endpoint("10.0.0.3")])
        await eventually(lambda: web.shows("10.0.0.3:8080"))
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_api_restart_mid_watch_keeps_endpoints_and_catches_up():
    api = fixture()
    namer = make_namer(api)
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1"), endpoint("10.0.0.2")])
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080", "10.0.0.2:8080") and api.watchers)
        port = api.port_number
        await api.stop()
        # while the API is down, the change happens (the restarted API keeps its history)
        api.set_service("default", "web", [endpoint("10.0.0.2"), endpoint("10.0.0.5")])
        await eventually(
            lambda: namer.state()["namespaces"]["default"]["connection"] == "backoff",
            what="outage noticed",
        )
        assert web.shows("10.0.0.1:8080", "10.0.0.2:8080"), (
            "last known endpoints kept during the outage"
        )
        api.listen(port)
        await eventually(
            lambda: web.shows("10.0.0.2:8080", "10.0.0.5:8080"), what="caught up after restart"
        )
        assert all(h for h in web.history())
        await eventually(lambda: namer.state()["namespaces"]["default"]["connection"] == "watching")
        assert api.watch_count() >= 2  # resumed from its version: no re-list was needed
        assert sum(1 for _, q in api.requests if "watch" not in q) == 1
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_500s_and_a_slow_api_are_retried():
    api = fixture()
    api.faults.fail_statuses = [500, 503, 500]
    namer = make_namer(api, timeout_s=0.3)
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")])
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080"), what="sync after 500s")
        assert namer._watchers["default"]._errors  # counted
        # a slow API: answers later than the request timeout, then recovers
        api.faults.delay_s = 1.0
        api.drop_watches()
        api.set_service("default", "web", [endpoint("10.0.0.1"), endpoint("10.0.0.6")])
        await eventually(
            lambda: "no answer" in (namer.state()["namespaces"]["default"]["lastError"] or ""),
            what="timeout noticed",
        )
        assert web.shows("10.0.0.1:8080")
        api.faults.delay_s = 0.0
        await eventually(
            lambda: web.shows("10.0.0.1:8080", "10.0.0.6:8080"), what="recovered from slow API"
        )
        assert all(h for h in web.history())
    finally:
        namer.close()
        await api.stop()


@pytest.mark.parametrize("why", ["not-served", "forbidden"])
@pytest_twisted.ensureDeferred
async def test_falls_back_to_v1_endpoints_when_slices_are_not_served(why):
    api = fixture()
    if why == "forbidden":
        api.forbidden.add(SLICES)
    else:
        api.faults.slices_served = False
    namer = make_namer(api)
    try:
        api.set_service(
            "default",
            "web",
            [endpoint("10.0.0.1", "n1", pod="web-1"), endpoint("10.0.0.2", ready=False)],
        )
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080"))
        (addr,) = web.addrs[-1].addresses
        assert addr.node_name == "n1" and addr.get("pod_name") == "web-1"
        assert namer.state()["namespaces"]["default"]["resource"] == "endpoints"
        api.set_service("default", "web", [endpoint("10.0.0.2")])
        await eventually(lambda: web.shows("10.0.0.2:8080"))
        assert api.watch_count(ENDPOINTS) == 1
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_bookmarks_advance_and_malformed_lines_are_skipped():
    api = fixture()
    namer = make_namer(api)
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")])
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080") and api.watchers)
        rv = api.bookmark("default")
        watcher = namer._watchers["default"]
        await eventually(lambda: watcher.resource_version == str(rv), what="bookmark version")
        api.send_raw(b"{not json")
        api.send_raw(b'{"type": "ADDED", "object": {"metadata": {"name": "x"}, "endpoints": 5}}')
        api.send_raw(b'["a list"]')
        api.set_service("default", "web", [endpoint("10.0.0.8")])
        await eventually(lambda: web.shows("10.0.0.8:8080"))
        assert api.watch_count() == 1  # the same stream survived the garbage
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_label_selector_picks_objects_by_label_value():
    api = fixture()
    namer = make_namer(api, label_selector="version")
    try:
        api.put(
            SLICES,
            "default",
            slice_obj("web-v1", [endpoint("10.0.0.1")], ("http", 80), labels={"version": "v1"}),
        )
        s2 = slice_obj("web-v1", [endpoint("10.0.0.2")], ("http", 80), labels={"version": "v2"})
        s2["metadata"]["name"] = "web-other"
        api.put(SLICES, "default", s2)
        v1 = Watched(namer, "/default/http/web-v1/v1/extra")
        v2 = Watched(namer, "/default/http/web-v1/v2")
        v3 = Watched(namer, "/default/http/web-v1/v3")
        await eventually(
            lambda: v1.shows("10.0.0.1:80") and v2.shows("10.0.0.2:80") and v3.trees[-1] == Ok(NEG)
        )
        leaf = v1.trees[-1].value.value
        assert leaf.id == Path.read(
            "/#/io.l5d.k8s/default/http/web-v1/v1"
        ) and leaf.residual == Path.read("/extra")
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_resync_relists_periodically():
    api = fixture()
    namer = make_namer(
        api,
        settings=WatchSettings(
            watch_timeout_s=60,
            idle_timeout_s=5.0,
            resync_s=0.3,
            backoff_base_s=0.05,
            backoff_max_s=0.4,
        ),
    )
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")])
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080"))
        # a change the watch never delivers (silently lost event) is repaired by the resync
        api.objects[(SLICES, "default", "web-abcde")] = slice_obj(
            "web", [endpoint("10.0.0.9")], ("http", 8080)
        )
        await eventually(lambda: web.shows("10.0.0.9:8080"), what="resync")
        assert all(h for h in web.history())
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_silent_watch_is_presumed_dead_and_resumed():
    api = fixture()
    namer = make_namer(
        api,
        settings=WatchSettings(
            watch_timeout_s=60,
            idle_timeout_s=0.3,
            resync_s=0,
            backoff_base_s=0.05,
            backoff_max_s=0.2,
        ),
    )
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")])
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080"))
        # the stream stays open but says nothing (a half-open connection looks the same)
        await eventually(lambda: api.watch_count() >= 3, what="silent watches replaced")
        assert "silent" in (namer.state()["namespaces"]["default"]["lastError"] or "")
        assert all(h == ["10.0.0.1:8080"] for h in web.history())
        api.set_service("default", "web", [endpoint("10.0.0.2")])
        await eventually(lambda: web.shows("10.0.0.2:8080"))
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_numbered_port_is_a_service_port_mapped_to_its_target():
    api = fixture()
    namer = make_namer(api)
    try:
        api.put(SERVICES, "default", service_obj("web", [("http", 80, 8080)]))
        api.set_service("default", "web", [endpoint("10.0.0.1")], port=("http", 8080))
        by_number = Watched(namer, "/default/80/web")
        by_target = Watched(namer, "/default/8080/web")
        by_name = Watched(namer, "/default/http/web")
        await eventually(
            lambda: (
                by_number.shows("10.0.0.1:8080")
                and by_target.shows("10.0.0.1:8080")
                and by_name.shows("10.0.0.1:8080")
            )
        )
        assert by_number.history() == [["10.0.0.1:8080"]]  # never the wrong port first
        # the Service's port is renumbered: the name follows
        api.put(SERVICES, "default", service_obj("web", [("http", 81, 8080)]))
        await eventually(lambda: by_number.shows("10.0.0.1:80"))
        assert namer.state()["services"]["default"]["services"]["web"] == {
            "http": ["service port 81"]
        }
        assert api.watch_count(SERVICES) == 1 and api.watch_count(SLICES) == 1
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_numbered_port_without_access_to_services_uses_the_number():
    api = fixture()
    api.forbidden.add(SERVICES)
    namer = make_namer(api)
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")], port=("http", 8080))
        by_number = Watched(namer, "/default/9000/web")
        await eventually(lambda: by_number.shows("10.0.0.1:9000"), what="fallback to the number")
        assert "forbidden" in namer.state()["services"]["default"]["lastError"]
    finally:
        namer.close()
        await api.stop()
