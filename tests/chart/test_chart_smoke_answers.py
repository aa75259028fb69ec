"""What `smoke` reports for each wrong answer: a scripted HTTP server on loopback plays the
admin server, the proxy and Prometheus, and each check must name what was wrong."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from l5d_twisted.cli.smoke.checks import AdminPing, PrometheusScrapes, ProxyRequest, SmokeFailure

Reply = tuple[int, dict[str, str], bytes]


@pytest.fixture
def scripted() -> Iterator[tuple[str, dict[str, Callable[[str], Reply]]]]:
    """A server answering each path with routes[path](full request target)."""
    routes: dict[str, Callable[[str], Reply]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = urllib.parse.urlsplit(self.path).path if self.path.startswith("/") else self.path
            route = routes.get(path)
            status, headers, body = route(self.path) if route else (404, {}, b"no route")
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def failure(check: object) -> str:
    with pytest.raises(SmokeFailure) as info:
        check.attempt(2.0)  # type: ignore[attr-defined]
    return str(info.value)


def prom(results: list[dict[str, object]]) -> Reply:
    return (
        200,
        {"Content-Type": "application/json"},
        json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": results}}
        ).encode(),
    )


def test_admin_must_answer_pong(scripted: tuple[str, dict]) -> None:
    addr, routes = scripted
    routes["/admin/ping"] = lambda _: (200, {}, b"ping?")
    assert (
        failure(AdminPing(f"http://{addr}"))
        == f"http://{addr}/admin/ping answered 'ping?', not 'pong'"
    )
    routes["/admin/ping"] = lambda _: (200, {}, b"pong\n")
    assert AdminPing(f"http://{addr}/").attempt(2.0) == f"http://{addr}/admin/ping answered pong"


def test_proxy_failure_shows_the_mesh_error(scripted: tuple[str, dict]) -> None:
    addr, routes = scripted
    seen: list[str] = []

    def no_hosts(target: str) -> Reply:
        seen.append(target)
        return (
            502,
            {"l5d-err": "Unable%20to%20route%20request%21%20service%20name%3A%20%2Fsvc%2Fhello"},
            b"Unable to route",
        )

    routes["http://hello/"] = no_hosts
    message = failure(ProxyRequest(addr, "http://hello/"))
    assert (
        message
        == f"http://hello/ via proxy {addr} answered HTTP 502: Unable to route request! service name: /svc/hello"
    )
    assert seen == ["http://hello/"]  # absolute-form target, as http_proxy clients send
    routes["http://hello/"] = lambda _: (200, {}, b"Goodbye")
    assert "does not match /Hello .*world/" in failure(ProxyRequest(addr, "http://hello/"))


def test_prometheus_names_missing_down_and_idle_targets(scripted: tuple[str, dict]) -> None:
    addr, routes = scripted
    answers: dict[str, Reply] = {}
    routes["/api/v1/query"] = lambda target: answers[
        "rate" if "rate(" in urllib.parse.unquote(target) else "up"
    ]
    check = PrometheusScrapes(f"http://{addr}")

    answers["up"] = prom([])
    assert (
        failure(check) == "Prometheus has no target of job 'l5d-twisted' (is the mesh discovered?)"
    )

    answers["up"] = prom(
        [
            {"metric": {"instance": "l5d-a"}, "value": [0, "1"]},
            {"metric": {"instance": "l5d-b"}, "value": [0, "0"]},
        ]
    )
    assert failure(check) == "1 of 2 mesh targets down: l5d-b"

    answers["up"] = prom([{"metric": {"instance": "l5d-a"}, "value": [0, "1"]}])
    answers["rate"] = prom([{"metric": {}, "value": [0, "0"]}])
    assert failure(check).startswith("1 mesh target up, but no requests yet")

    answers["rate"] = prom([{"metric": {}, "value": [0, "2.5"]}])
    assert check.attempt(2.0) == "1 mesh target up, 2.50 requests/s"

    answers["up"] = (500, {}, b"oops")
    assert "answered HTTP 500: oops" in failure(check)
