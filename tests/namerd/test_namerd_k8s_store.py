"""namerd's ``io.l5d.k8s`` storage: a real ``l5d-twisted namerd`` keeping its dtabs as DTab
custom resources in a (fake, see k8s_dtab_fake_api.py) Kubernetes API: CRUD through namerd's
HTTP API, the API server's conflict as namerd's 412, a change made directly in the API
reaching a ``?watch=true`` stream, the last known dtabs kept through an API outage."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_dtab_fake_api import FakeDtabApi
from l5d_testing import Processes, free_port, wait_for_port, wait_until
from namerd_helpers import NamerdProcess

from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.namerd.config import K8sStorage, load_namerd_config
from l5d_twisted.namerd.k8s_store import dtab_object, parse_dtab_object
from l5d_twisted.naming.dtab import Dtab

DTAB = {"Content-Type": "application/dtab"}
JSON = {"Content-Type": "application/json"}
NS = "mesh"  # the Kubernetes namespace of the DTab objects

CONFIG = """\
storage:
  kind: io.l5d.k8s
  host: 127.0.0.1
  port: {api_port}
  namespace: {ns}
  watchTimeoutSecs: 30
  namespaces:
    default: /svc => /#/io.l5d.fs
namers:
- kind: io.l5d.fs
  rootDir: {disco}
interfaces:
- kind: io.l5d.httpController
  port: {port}
admin:
  port: {admin_port}
"""


@pytest.fixture
def api() -> Iterator[FakeDtabApi]:
    fake = FakeDtabApi(free_port())
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def k8s_namerd(processes: Processes, tmp_path: Path, api: FakeDtabApi) -> Iterator[NamerdProcess]:
    running = start_k8s_namerd(processes, tmp_path, api)
    # the seeded dtab is created in the API and seen back by the watch
    wait_until(lambda: running.call("GET", "/api/1/dtabs/default").status == 200, what="seed")
    yield running
    processes.stop(running.proc)


def start_k8s_namerd(processes: Processes, tmp_path: Path, api: FakeDtabApi) -> NamerdProcess:
    disco = tmp_path / "disco"
    disco.mkdir()
    (disco / "hello").write_text("127.0.0.1 8081\n")
    port, admin_port = free_port(), free_port()
    config = tmp_path / "namerd.yaml"
    config.write_text(
        CONFIG.format(api_port=api.port, ns=NS, disco=disco, port=port, admin_port=admin_port)
    )
    proc = processes.l5d("namerd", str(config), "--log-format", "text", name="namerd")
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
    except Exception:
        raise AssertionError(f"namerd did not start:\n{processes.log(proc)}") from None
    return NamerdProcess(port, admin_port, disco, proc, processes, config)


def edited(api: FakeDtabApi, dst: str) -> dict[str, object]:
    """The default DTab as ``kubectl edit`` would send it back: its version, a new dst."""
    obj = api.get(NS, "default")
    assert obj is not None
    obj["dentries"] = [{"prefix": "/svc", "dst": dst}]
    return obj


def etag_of(obj: dict[str, object]) -> str:
    meta = obj["metadata"]
    assert isinstance(meta, dict)
    return base64.b64encode(str(meta["resourceVersion"]).encode()).decode()


def test_crud_through_namerd_is_kept_as_dtab_resources(
    k8s_namerd: NamerdProcess, api: FakeDtabApi
) -> None:
    seeded = api.get(NS, "default")
    assert seeded is not None and seeded["kind"] == "DTab"
    assert seeded["dentries"] == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]
    got = k8s_namerd.call("GET", "/api/1/dtabs/default")
    # the ETag is the object's resourceVersion, base64 as namerd shows versions
    assert got.headers["etag"] == etag_of(seeded)
    assert json.loads(got.body) == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]

    created = k8s_namerd.call("POST", "/api/1/dtabs/canary", "/host => /#/io.l5d.fs", DTAB)
    assert created.status == 204
    obj = api.get(NS, "canary")
    assert obj is not None and obj["dentries"] == [{"prefix": "/host", "dst": "/#/io.l5d.fs"}]
    assert created.headers["etag"] == etag_of(obj)
    assert k8s_namerd.call("POST", "/api/1/dtabs/canary", "/x => /y", DTAB).status == 409
    listed = json.loads(k8s_namerd.call("GET", "/api/1/dtabs").body)
    assert sorted(listed) == ["canary", "default"]

    body = json.dumps([{"prefix": "/host", "dst": "9 * /srv/v1 & 1 * /srv/v2"}])
    updated = k8s_namerd.call(
        "PUT", "/api/1/dtabs/canary", body, {**JSON, "If-Match": created.headers["etag"]}
    )
    assert updated.status == 204
    obj = api.get(NS, "canary")
    assert obj is not None
    assert updated.headers["etag"] == etag_of(obj) != created.headers["etag"]
    assert obj["dentries"] == [{"prefix": "/host", "dst": "9.0 * /srv/v1 & /srv/v2"}]
    text = k8s_namerd.call("GET", "/api/1/dtabs/canary", headers={"Accept": "application/dtab"})
    assert text.text == "/host => 9.0 * /srv/v1 & /srv/v2\n"

    # without If-Match: the object's version is read and written with (the API server has
    # no unconditional update of a custom resource), or the object created
    assert k8s_namerd.call("PUT", "/api/1/dtabs/canary", "/host => /srv/v2", DTAB).status == 204
    obj = api.get(NS, "canary")
    assert obj is not None and obj["dentries"] == [{"prefix": "/host", "dst": "/srv/v2"}]
    assert k8s_namerd.call("PUT", "/api/1/dtabs/fresh", "/a => /b", DTAB).status == 204
    assert api.get(NS, "fresh") is not None
    assert k8s_namerd.call("DELETE", "/api/1/dtabs/fresh").status == 204

    assert k8s_namerd.call("DELETE", "/api/1/dtabs/canary").status == 204
    assert api.get(NS, "canary") is None
    assert k8s_namerd.call("GET", "/api/1/dtabs/canary").status == 404
    assert k8s_namerd.call("DELETE", "/api/1/dtabs/canary").status == 404
    assert json.loads(k8s_namerd.call("GET", "/api/1/dtabs").body) == ["default"]


def test_a_stale_version_is_412_and_changes_nothing(
    k8s_namerd: NamerdProcess, api: FakeDtabApi
) -> None:
    v1 = k8s_namerd.call("GET", "/api/1/dtabs/default").headers["etag"]
    first = k8s_namerd.call("PUT", "/api/1/dtabs/default", "/svc => /a", {**DTAB, "If-Match": v1})
    assert first.status == 204
    # a second writer that read v1 too: the API server's 409 Conflict is namerd's 412
    stale = k8s_namerd.call("PUT", "/api/1/dtabs/default", "/svc => /b", {**DTAB, "If-Match": v1})
    assert stale.status == 412
    obj = api.get(NS, "default")
    assert obj is not None and obj["dentries"] == [{"prefix": "/svc", "dst": "/a"}]
    now = k8s_namerd.call("GET", "/api/1/dtabs/default", headers={"Accept": "application/dtab"})
    assert (now.text, now.headers["etag"]) == ("/svc => /a\n", first.headers["etag"])
    # the conditional PUT reached the API with v1 as its resourceVersion
    assert ("PUT", f"/apis/l5d.io/v1alpha1/namespaces/{NS}/dtabs/default") in api.requests


def test_two_writers_with_one_version_exactly_one_wins(
    k8s_namerd: NamerdProcess, api: FakeDtabApi
) -> None:
    version = k8s_namerd.call("GET", "/api/1/dtabs/default").headers["etag"]
    statuses: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def write(dst: str) -> None:
        barrier.wait(10)
        answer = k8s_namerd.call(
            "PUT", "/api/1/dtabs/default", f"/svc => {dst}", {**DTAB, "If-Match": version}
        )
        statuses[dst] = answer.status

    threads = [threading.Thread(target=write, args=(dst,)) for dst in ("/one", "/two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses.values()) == [204, 412]
    (winner,) = [dst for dst, status in statuses.items() if status == 204]
    obj = api.get(NS, "default")
    assert obj is not None and obj["dentries"] == [{"prefix": "/svc", "dst": winner}]


def test_a_change_made_in_the_api_reaches_a_watch(
    k8s_namerd: NamerdProcess, api: FakeDtabApi
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", k8s_namerd.port, timeout=15)
    try:
        conn.request(
            "GET", "/api/1/dtabs/default?watch=true", headers={"Accept": "application/dtab"}
        )
        rsp = conn.getresponse()
        assert rsp.status == 200
        assert rsp.readline() == b"/svc => /#/io.l5d.fs\n"
        # as kubectl edit would: straight to the API, not through namerd
        code, _ = api.write(NS, "PUT", "default", edited(api, "/#/io.l5d.fs/v2"))
        assert code == 200
        assert rsp.readline() == b"/svc => /#/io.l5d.fs/v2\n"  # socket timeout: the deadline
        api.write(NS, "DELETE", "default", None)
        wait_until(
            lambda: k8s_namerd.call("GET", "/api/1/dtabs/default").status == 404,
            what="the deletion seen by namerd",
        )
    finally:
        conn.close()


def test_an_api_outage_keeps_the_last_known_dtabs(
    k8s_namerd: NamerdProcess, api: FakeDtabApi
) -> None:
    before = k8s_namerd.call("GET", "/api/1/dtabs/default")
    api.stop()
    # reads are served from what namerd knew; binding goes on with it
    for _ in range(3):
        during = k8s_namerd.call("GET", "/api/1/dtabs/default")
        assert (during.status, during.body, during.headers["etag"]) == (
            200,
            before.body,
            before.headers["etag"],
        )
    bound = k8s_namerd.call("GET", "/api/1/bind/default?path=/svc/hello")
    assert bound.status == 200 and b"127.0.0.1" in bound.body
    # a write cannot be kept anywhere: refused, nothing pretends it happened
    refused = k8s_namerd.call("PUT", "/api/1/dtabs/default", "/svc => /lost", DTAB)
    assert refused.status >= 500
    # meanwhile someone changed the dtab in the API; namerd catches up when it is back
    assert api.write(NS, "PUT", "default", edited(api, "/after"))[0] == 200
    api.start()
    wait_until(
        lambda: (
            k8s_namerd.call(
                "GET", "/api/1/dtabs/default", headers={"Accept": "application/dtab"}
            ).text
            == "/svc => /after\n"
        ),
        timeout=45,
        what="the change made during the outage",
    )


def test_namerd_answers_only_once_it_has_read_its_dtabs(
    processes: Processes, tmp_path: Path
) -> None:
    # Started while the API is away, namerd must not answer "no dtab" (a mesh would bind
    # every name with an empty dtab): 503 until the first list, and /ready says so.
    api = FakeDtabApi(free_port())
    running = start_k8s_namerd(processes, tmp_path, api)
    try:
        for _ in range(3):
            assert running.call("GET", "/api/1/dtabs/default").status == 503
            assert running.call("GET", "/api/1/bind/default?path=/svc/hello").status == 503
        ready = http.client.HTTPConnection("127.0.0.1", running.admin_port, timeout=15)
        ready.request("GET", "/ready")
        assert ready.getresponse().status == 503
        ready.close()
        api.start()
        wait_until(
            lambda: running.call("GET", "/api/1/dtabs/default").status == 200,
            timeout=45,
            what="namerd serving once the API answers",
        )
        assert api.get(NS, "default") is not None  # seeded before serving
    finally:
        processes.stop(running.proc)
        api.stop()


def test_410_gone_lists_again(k8s_namerd: NamerdProcess, api: FakeDtabApi) -> None:
    api.stop()
    api.write(NS, "POST", "other", {"metadata": {"name": "other"}, "dentries": []})
    api.compact()  # namerd's resourceVersion is now older than the API keeps
    api.start()
    wait_until(
        lambda: k8s_namerd.call("GET", "/api/1/dtabs/other").status == 200,
        timeout=45,
        what="the object created during the outage, after 410 Gone",
    )


def test_dtab_objects_round_trip_and_bad_ones_are_refused() -> None:
    dtab = Dtab.read("/a => /b | /c; /d => 3 * /e & /f")
    obj = dtab_object("ns", dtab, "42")
    obj["metadata"]["resourceVersion"] = "42"
    name, versioned = parse_dtab_object(obj)
    assert (name, versioned.dtab, versioned.version) == ("ns", dtab, b"42")
    for bad in (
        {},
        {"metadata": {"name": "x"}},
        {"metadata": {"name": "x", "resourceVersion": "1"}, "dentries": [{"prefix": "/a"}]},
        {
            "metadata": {"name": "x", "resourceVersion": "1"},
            "dentries": [{"prefix": "a", "dst": "/b"}],
        },
    ):
        with pytest.raises(ValueError):
            parse_dtab_object(bad)


def test_config_keys_and_kubernetes_names() -> None:
    config = load_namerd_config(
        "storage: {kind: io.l5d.k8s, namespace: l5d, namespaces: {default: /a => /b}}\n"
        "interfaces: [{kind: io.l5d.httpController}]\n"
    )
    storage = config.storage.config
    assert isinstance(storage, K8sStorage)
    assert (storage.host, storage.port, storage.namespace) == (None, None, "l5d")
    assert storage.namespaces == {"default": Dtab.read("/a => /b")}
    # namerd's name for the same storage over a CRD
    v2 = load_namerd_config(
        "storage: {kind: io.l5d.v2.k8s, host: 127.0.0.1, port: 8001}\n"
        "interfaces: [{kind: io.l5d.httpController}]\n"
    )
    assert (v2.storage.kind, v2.storage.config) == (
        "io.l5d.v2.k8s",
        K8sStorage(host="127.0.0.1", port=8001),
    )
    with pytest.raises(ConfigErrors) as e:
        load_namerd_config(
            "storage: {kind: io.l5d.k8s, namespace: Bad_NS, namespaces: {Upper: /a => /b}}\n"
            "interfaces: [{kind: io.l5d.httpController}]\n"
        )
    found = [str(err) for err in e.value.errors]
    assert any("storage.namespace: not a Kubernetes namespace name" in f for f in found)
    assert any("storage.namespaces.Upper: with io.l5d.k8s" in f for f in found)
