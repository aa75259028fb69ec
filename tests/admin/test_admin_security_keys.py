"""``admin.security`` (issue 12): linkerd 1's uiEnabled / controlEnabled /
diagnosticsEnabled categories, pathWhitelist and pathBlacklist, against a real admin
server on 127.0.0.1 (and one real ``l5d-twisted run`` reading them from its config)."""

from __future__ import annotations

import http.client
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from fake_mesh import FakeMesh, Traffic
from l5d_testing import Processes, free_port, wait_for_port
from twisted.internet import reactor
from twisted.internet.task import Clock

from l5d_twisted.admin.security import CONTROL, DIAGNOSTICS, UI, AdminSecurity, category
from l5d_twisted.admin.server import AdminServer
from l5d_twisted.config import load_config
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.model import AdminSecurityConfig

Serve = Callable[[AdminSecurity | None], Any]


@pytest_twisted.async_yield_fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts admin servers over a fake mesh with a given filter; stops them after."""
    ports: list[Any] = []

    def start(security: AdminSecurity | None) -> str:
        mesh = FakeMesh(Clock(), allow_shutdown=True)
        Traffic(mesh, hello_rps=5, world_rps=5).step(1.0)
        port = AdminServer(mesh, reactor, security=security).listen("127.0.0.1", 0)
        ports.append(port)
        return f"http://127.0.0.1:{port.getHost().port}"

    yield start
    for port in ports:
        await port.stopListening()


async def status(url: str, method: str = "GET") -> tuple[int, bytes]:
    response = await treq.request(method, url)
    return response.code, await response.content()


def security(**kwargs: Any) -> AdminSecurity:
    return AdminSecurity.from_config(AdminSecurityConfig(**kwargs))  # type: ignore[return-value]


UI_PATHS = ["/", "/index.html", "/admin", "/static/dashboard.js", "/delegator",
            "/delegator.json?path=/svc/hello&dtab=", "/config.json", "/admin/metrics.json",
            "/admin/dashboard.json", "/admin/routers.json"]  # fmt: skip
DIAGNOSTIC_PATHS = ["/admin/ping", "/ready", "/client_state.json", "/requests.json",
                    "/admin/metrics/prometheus"]  # fmt: skip


def test_categories_are_linkerd_1s_mapped_to_this_servers_paths() -> None:
    for path in ("/", "/config.json", "/admin/metrics.json", "/delegator", "/delegator.json",
                 "/files/x.js", "/admin/files/y", "/metrics.json", "/logging", "/help"):  # fmt: skip
        assert category(path) == UI, path  # linkerd 1's own list
    for path in ("/index.html", "/admin", "/admin/", "/static/dashboard.js",
                 "/admin/dashboard.json", "/admin/routers.json"):  # fmt: skip
        assert category(path) == UI, path  # this server's paths of the same pages
    assert category("/admin/shutdown") == category("/logging.json") == CONTROL
    for path in ("/admin/ping", "/ready", "/admin/metrics/prometheus", "/namer_state/x.json",
                 "/requests", "/client_state.json", "/admin/shutdownx", "/config.jsonx"):  # fmt: skip
        assert category(path) == DIAGNOSTICS, path  # whole-path matches, as Java's matches()


@pytest_twisted.ensureDeferred
async def test_without_a_security_block_everything_is_served(serve: Serve) -> None:
    base = serve(None)
    for path in UI_PATHS + DIAGNOSTIC_PATHS:
        assert (await status(base + path))[0] == 200, path
    assert (await status(base + "/admin/shutdown", "POST"))[0] == 202


@pytest_twisted.ensureDeferred
async def test_ui_disabled_refuses_the_dashboard_and_playground_with_an_empty_404(
    serve: Serve,
) -> None:
    base = serve(security(ui_enabled=False))
    for path in UI_PATHS:
        assert await status(base + path) == (404, b""), path
    for path in DIAGNOSTIC_PATHS:
        assert (await status(base + path))[0] == 200, path


@pytest_twisted.ensureDeferred
async def test_control_disabled_refuses_shutdown_only(serve: Serve) -> None:
    base = serve(security(control_enabled=False))
    assert await status(base + "/admin/shutdown", "POST") == (404, b"")
    for path in UI_PATHS + DIAGNOSTIC_PATHS:
        assert (await status(base + path))[0] == 200, path


@pytest_twisted.ensureDeferred
async def test_diagnostics_disabled_refuses_everything_else(serve: Serve) -> None:
    base = serve(security(diagnostics_enabled=False))
    for path in DIAGNOSTIC_PATHS + ["/no/such/path"]:
        assert await status(base + path) == (404, b""), path
    assert (await status(base + "/config.json"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_whitelist_reopens_paths_of_a_disabled_category(serve: Serve) -> None:
    """linkerd 1's doc example: ui on, control off, /logging.json whitelisted; here
    Prometheus scrapes stay open while everything else is closed."""
    base = serve(
        security(
            ui_enabled=False,
            control_enabled=False,
            diagnostics_enabled=False,
            path_whitelist=("^/admin/metrics/prometheus$", "/admin/p.ng"),
        )
    )
    assert (await status(base + "/admin/metrics/prometheus"))[0] == 200
    assert (await status(base + "/admin/ping"))[0] == 200
    for path in ["/", "/config.json", "/ready", "/admin/metrics.json"]:
        assert await status(base + path) == (404, b""), path
    assert await status(base + "/admin/shutdown", "POST") == (404, b"")


@pytest_twisted.ensureDeferred
async def test_blacklist_wins_over_enabled_categories_and_the_whitelist(serve: Serve) -> None:
    """linkerd 1's precedence: the blacklist is checked first."""
    base = serve(
        security(
            path_blacklist=("^/admin/shutdown$", "/config[.]json", "/namer_state/.*"),
            path_whitelist=("/config[.]json",),
        )
    )
    assert await status(base + "/admin/shutdown", "POST") == (404, b"")
    assert await status(base + "/config.json") == (404, b"")
    assert await status(base + "/namer_state/io.l5d.fs.json") == (404, b"")
    assert (await status(base + "/admin/ping"))[0] == 200
    # the filter tests the path the server dispatches on, without the query string
    assert await status(base + "/config.json?pretty=1") == (404, b"")


def test_bad_regexes_are_refused_by_check() -> None:
    with pytest.raises(ConfigErrors) as raised:
        load_config(
            "admin:\n  security:\n    pathBlacklist: ['^/admin/(shutdown$']\n"
            "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1;\n"
        )
    assert "admin.security.pathBlacklist: invalid regular expression '^/admin/(shutdown$'" in str(
        raised.value
    )


def test_the_workers_admin_server_reads_the_same_block() -> None:
    """The supervisor's admin server (workers: N) takes the filter from its target's
    config, as a single process's does."""
    from l5d_twisted.workers.admin import WorkersAdminServer

    config = load_config(
        "admin:\n  security: {controlEnabled: false}\n"
        "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1;\n"
    )
    target = types.SimpleNamespace(
        config=config, metrics=FakeMesh(Clock()).metrics, routers=[], telemeters=[]
    )
    server = WorkersAdminServer(target, Clock())  # type: ignore[arg-type]
    assert server.security is not None and not server.security.allows("/admin/shutdown")
    assert server.security.allows("/admin/workers.json")


def test_a_running_mesh_applies_admin_security_from_its_config(
    processes: Processes, tmp_path: Path
) -> None:
    admin_port = free_port()
    config = tmp_path / "mesh.yaml"
    config.write_text(
        f"""
admin:
  ip: 127.0.0.1
  port: {admin_port}
  allowShutdown: true
  security:
    uiEnabled: false
    pathWhitelist: ['^/config[.]json$']
    pathBlacklist: ['^/admin/shutdown$']
routers:
- protocol: http
  dtab: /svc => /$/inet/127.1/1;
  servers: [{{ip: 127.0.0.1, port: {free_port()}}}]
"""
    )
    processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", admin_port)

    def fetch(method: str, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    assert fetch("GET", "/") == (404, b"")  # ui disabled
    assert fetch("GET", "/delegator") == (404, b"")
    assert fetch("GET", "/config.json")[0] == 200  # whitelisted
    assert fetch("GET", "/admin/ping") == (200, b"pong")  # diagnostics: the probes
    assert fetch("POST", "/admin/shutdown") == (404, b"")  # blacklisted: still running
    assert fetch("GET", "/ready") == (200, b"ready")
