"""namerd's HTTP interface (io.l5d.httpController) against a real ``l5d-twisted namerd``:
dtab CRUD with versions, the concurrent-writers race, bad input, bind/addr/resolve/delegate."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections import Counter
from urllib.parse import quote

from namerd_helpers import NamerdProcess

JSON = {"Content-Type": "application/json"}
DTAB = {"Content-Type": "application/dtab"}


def test_list_and_get_in_both_media_types(namerd: NamerdProcess) -> None:
    listed = namerd.call("GET", "/api/1/dtabs")
    assert (listed.status, listed.headers["content-type"], json.loads(listed.body)) == (
        200,
        "application/json",
        ["default"],
    )
    got = namerd.call("GET", "/api/1/dtabs/default")
    assert got.status == 200 and got.headers["content-type"] == "application/json"
    assert json.loads(got.body) == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]
    assert got.headers["etag"] == "AAAAAAAAAAE="  # namerd's version 1, base64
    text = namerd.call("GET", "/api/1/dtabs/default", headers={"Accept": "application/dtab"})
    assert (text.headers["content-type"], text.text) == (
        "application/dtab",
        "/svc => /#/io.l5d.fs\n",
    )
    # the first type of Accept that namerd serves wins, in the order listed
    first = namerd.call(
        "GET", "/api/1/dtabs/default", headers={"Accept": "text/html, application/dtab, */*"}
    )
    assert first.headers["content-type"] == "application/dtab"
    head = namerd.call("HEAD", "/api/1/dtabs/default")
    assert (head.status, head.headers["etag"], head.body) == (200, "AAAAAAAAAAE=", b"")


def test_create_update_delete_with_versions(namerd: NamerdProcess) -> None:
    created = namerd.call("POST", "/api/1/dtabs/canary", "/host => /#/io.l5d.fs", DTAB)
    assert created.status == 204 and created.body == b""
    assert namerd.call("POST", "/api/1/dtabs/canary", "/x => /y", DTAB).status == 409
    v1 = namerd.call("GET", "/api/1/dtabs/canary").headers["etag"]
    assert v1 == created.headers["etag"]

    body = json.dumps([{"prefix": "/host", "dst": "9 * /srv/v1 & 1 * /srv/v2"}])
    updated = namerd.call("PUT", "/api/1/dtabs/canary", body, {**JSON, "If-Match": v1})
    assert updated.status == 204
    v2 = updated.headers["etag"]
    assert v2 != v1
    got = namerd.call("GET", "/api/1/dtabs/canary", headers={"Accept": "application/dtab"})
    assert got.text == "/host => 9.0 * /srv/v1 & /srv/v2\n"
    assert got.headers["etag"] == v2

    stale = namerd.call("PUT", "/api/1/dtabs/canary", "/host => /nowhere", {**DTAB, "If-Match": v1})
    assert stale.status == 412
    assert namerd.call("GET", "/api/1/dtabs/canary").headers["etag"] == v2  # nothing changed
    assert (
        namerd.call("GET", "/api/1/dtabs/canary", headers={"Accept": "application/dtab"}).text
        == got.text
    )

    # without If-Match a PUT writes whatever the version, and creates
    assert namerd.call("PUT", "/api/1/dtabs/canary", "/host => /a", DTAB).status == 204
    assert namerd.call("PUT", "/api/1/dtabs/fresh", "/host => /a", DTAB).status == 204
    assert json.loads(namerd.call("GET", "/api/1/dtabs").body) == ["canary", "default", "fresh"]

    assert namerd.call("DELETE", "/api/1/dtabs/canary").status == 204
    assert namerd.call("DELETE", "/api/1/dtabs/canary").status == 404
    assert namerd.call("GET", "/api/1/dtabs/canary").status == 404
    # If-Match on a namespace that does not exist: 404, as namerd
    assert (
        namerd.call("PUT", "/api/1/dtabs/canary", "/a => /b", {**DTAB, "If-Match": v2}).status
        == 404
    )
    # an If-Match that is no version of ours matches nothing
    assert (
        namerd.call("PUT", "/api/1/dtabs/fresh", "/a => /b", {**DTAB, "If-Match": "%%"}).status
        == 412
    )

    # namerd's admin counts the outcomes (never by namespace: a client cannot grow them)
    conn = http.client.HTTPConnection("127.0.0.1", namerd.admin_port, timeout=15)
    conn.request("GET", "/admin/metrics.json")
    metrics = json.loads(conn.getresponse().read())
    conn.close()
    assert metrics["namerd/dtab/conflicts"] == 2  # the stale If-Match and the non-version
    assert metrics["namerd/dtab/writes"] == 5  # POST, 3 PUTs, DELETE
    assert metrics["namerd/dtab/refused"] == 3  # 409, the second DELETE, If-Match on nothing
    assert metrics["namerd/namespaces"] == 2


def _raw_put(port: int, ns: str, version: str, dtab: str, barrier: threading.Barrier) -> int:
    body = dtab.encode()
    request = (
        f"PUT /api/1/dtabs/{ns} HTTP/1.1\r\nHost: namerd\r\nContent-Type: application/dtab\r\n"
        f"If-Match: {version}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        barrier.wait(timeout=15)  # every writer connected: send at once
        s.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_concurrent_writers_with_one_version_exactly_one_wins(namerd: NamerdProcess) -> None:
    """Real concurrent HTTP writers: each round, every writer read the same version and
    sends its update with If-Match at the same moment; exactly one gets 204, the others
    412, and the stored dtab is the winner's."""
    writers = 4
    for round_ in range(15):
        version = namerd.call("GET", "/api/1/dtabs/default").headers["etag"]
        barrier = threading.Barrier(writers)
        results: dict[int, int] = {}

        def write(
            i: int,
            round_: int = round_,
            version: str = version,
            barrier: threading.Barrier = barrier,
            results: dict[int, int] = results,
        ) -> None:
            dtab = f"/svc => /#/io.l5d.fs/r{round_}w{i}"
            results[i] = _raw_put(namerd.port, "default", version, dtab, barrier)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        counts = Counter(results.values())
        assert counts == {204: 1, 412: writers - 1}, (round_, results)
        (winner,) = [i for i, status in results.items() if status == 204]
        stored = namerd.call("GET", "/api/1/dtabs/default", headers={"Accept": "application/dtab"})
        assert stored.text == f"/svc => /#/io.l5d.fs/r{round_}w{winner}\n"
        assert stored.headers["etag"] != version


def test_bad_input_gets_clear_4xx_answers(namerd: NamerdProcess) -> None:
    bad = namerd.call("POST", "/api/1/dtabs/x", "/svc => ", DTAB)
    assert bad.status == 400 and "expected a name" in bad.text and "offset 8" in bad.text
    bad_json = namerd.call("POST", "/api/1/dtabs/x", '[{"prefix": "/a"}]', JSON)
    assert bad_json.status == 400 and "entry 0" in bad_json.text
    assert namerd.call("POST", "/api/1/dtabs/x", "{nope", JSON).status == 400
    ctype = namerd.call("POST", "/api/1/dtabs/x", "/a => /b", {"Content-Type": "text/html"})
    assert ctype.status == 400 and 'Invalid Content-Type "text/html"' in ctype.text
    assert namerd.call("GET", "/api/1/dtabs/x").status == 404  # nothing was created
    name = namerd.call("GET", "/api/1/dtabs/" + quote("../etc", safe=""))
    assert name.status == 400 and "namespace" in name.text
    assert namerd.call("GET", "/api/1/nothing").status == 404
    assert namerd.call("GET", "/elsewhere").status == 404
    assert namerd.call("PATCH", "/api/1/dtabs/default", "", DTAB).status == 405
    nopath = namerd.call("GET", "/api/1/bind/default")
    assert nopath.status == 400 and "?path=" in nopath.text
    badpath = namerd.call("GET", "/api/1/bind/default?path=" + quote("no-slash"))
    assert badpath.status == 400 and "Invalid path" in badpath.text
    extra = namerd.call("GET", "/api/1/bind/default?path=/svc/a&dtab=" + quote("/a =>"))
    assert extra.status == 400 and "invalid dtab" in extra.text
    # a dtab that expands exponentially is refused by the binding limits, not computed
    bomb = "/svc => /svc/a & /svc/b"
    limit = namerd.call("GET", "/api/1/bind/default?path=/svc/x&dtab=" + quote(bomb))
    assert limit.status == 400
    assert "nested more than 32 deep" in limit.text or "work units" in limit.text
    # a parameter past twisted.web's request line limit: a 414 that says so (not a hang-up)
    huge = namerd.call("GET", "/api/1/bind/default?path=/svc/a&dtab=" + quote("/a=>/b;" * 4000))
    assert huge.status == 414 and "request line or header longer than" in huge.text
    assert "Traceback" not in namerd.log()


def test_huge_bodies_are_refused_before_being_read(namerd: NamerdProcess) -> None:
    big = "/a => /b;" * 40_000  # 360 KB
    sized = namerd.call("PUT", "/api/1/dtabs/default", big, DTAB)
    assert sized.status == 413 and "larger than" in sized.text
    # the same without a Content-Length (chunked): cut off once past the limit
    conn_headers = {**DTAB, "Transfer-Encoding": "chunked"}
    conn = http.client.HTTPConnection("127.0.0.1", namerd.port, timeout=15)
    conn.putrequest("PUT", "/api/1/dtabs/default")
    for k, v in conn_headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    chunk = ("/a => /b;" * 1000).encode()
    status = None
    try:
        for _ in range(40):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        status = conn.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        status = 413  # the server answered and closed while we were still sending
    finally:
        conn.close()
    assert status == 413
    unchanged = namerd.call("GET", "/api/1/dtabs/default", headers={"Accept": "application/dtab"})
    assert unchanged.text == "/svc => /#/io.l5d.fs\n"
    assert namerd.call("GET", "/api/1/dtabs").status == 200  # still serving
    assert "Traceback" not in namerd.log()
    assert namerd.processes.stop(namerd.proc) == 0  # SIGTERM: a clean exit


def test_bind_addr_resolve_delegate(namerd: NamerdProcess) -> None:
    bound = namerd.call("GET", "/api/1/bind/default?path=/svc/hello")
    assert bound.status == 200 and bound.headers["content-type"] == "application/json"
    assert json.loads(bound.body) == {
        "type": "leaf",
        "bound": {
            "id": "/#/io.l5d.fs/hello",
            "path": "/",
            "addr": {
                "type": "bound",
                "addrs": [{"ip": "127.0.0.1", "port": 8081, "meta": {}}],
                "meta": {},
            },
        },
    }
    addr = namerd.call("GET", "/api/1/addr/default?path=" + quote("/#/io.l5d.fs/hello"))
    assert json.loads(addr.body)["addrs"] == [{"ip": "127.0.0.1", "port": 8081, "meta": {}}]
    resolved = namerd.call("GET", "/api/1/resolve/default?path=/svc/hello")
    assert json.loads(resolved.body)["addrs"][0]["port"] == 8081
    neg = namerd.call("GET", "/api/1/bind/default?path=/svc/nobody")
    assert json.loads(neg.body) == {"type": "neg"}
    assert json.loads(namerd.call("GET", "/api/1/resolve/default?path=/svc/nobody").body) == {
        "type": "neg"
    }
    # a namespace without a dtab binds with an empty dtab, as namerd's
    assert json.loads(namerd.call("GET", "/api/1/bind/nodtab?path=/svc/hello").body) == {
        "type": "neg"
    }
    # the extra dtab parameter is appended (later rules win)
    other = namerd.call(
        "GET", "/api/1/bind/default?path=/svc/hello&dtab=" + quote("/svc => /#/other")
    )
    assert json.loads(other.body)["bound"]["id"] == "/#/other/hello"

    delegated = json.loads(namerd.call("GET", "/api/1/delegate/default?path=/svc/hello").body)
    assert delegated["type"] == "delegate" and delegated["path"] == "/svc/hello"
    assert delegated["delegate"]["dentry"] == {"prefix": "/svc", "dst": "/#/io.l5d.fs"}
    assert delegated["delegate"]["bound"]["id"] == "/#/io.l5d.fs/hello"


def test_resolve_picks_union_branches_by_weight(namerd: NamerdProcess) -> None:
    (namerd.disco / "v1").write_text("127.0.0.1 9001\n")
    (namerd.disco / "v2").write_text("127.0.0.1 9002\n")
    dtab = "/svc => /#/io.l5d.fs; /svc/world => 1 * /#/io.l5d.fs/v1 & 1 * /#/io.l5d.fs/v2"
    assert namerd.call("PUT", "/api/1/dtabs/default", dtab, DTAB).status == 204
    union = json.loads(namerd.call("GET", "/api/1/bind/default?path=/svc/world").body)
    assert union["type"] == "union" and [b["weight"] for b in union["union"]] == [1.0, 1.0]
    ports = Counter(
        json.loads(namerd.call("GET", "/api/1/resolve/default?path=/svc/world").body)["addrs"][0][
            "port"
        ]
        for _ in range(60)
    )
    assert set(ports) == {9001, 9002}  # both branches; P(one missing in 60) = 2 * 2**-60
