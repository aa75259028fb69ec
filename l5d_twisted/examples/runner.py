"""Run one sample app in the foreground: listen, log JSON to stdout, stop on SIGTERM/SIGINT."""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from l5d_twisted.examples.apps import HelloApp, SampleApp, WorldApp
from l5d_twisted.examples.appserver import listen
from l5d_twisted.examples.client import HttpClient, proxy_from_env, resolve_target
from l5d_twisted.examples.knobs import Knobs
from l5d_twisted.logs import start_logging

log = Logger()

DEFAULT_PORTS = {"hello": 7777, "world": 7778}


@dataclass(frozen=True)
class AppOptions:
    app: str  # "hello" or "world"
    ip: str = "127.0.0.1"
    port: int | None = None  # None: the app's default port
    latency_ms: float = 0.0
    failure_rate: float = 0.0
    target: str = "http://world/"
    timeout_ms: float = 10_000.0


def ip_label(bound_ip: str, port: int, env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """What the app reports as its address: ``POD_IP`` if set (in Kubernetes every instance
    has its own), else the bound ``ip:port`` (on one machine the instances share an ip, and
    only the port tells them apart)."""
    env = os.environ if env is None else env
    pod_ip = env.get("POD_IP")
    if pod_ip:
        return pod_ip
    return f"[{bound_ip}]:{port}" if ":" in bound_ip else f"{bound_ip}:{port}"


def build_app(reactor: Any, options: AppOptions, env: dict[str, str] | None = None) -> SampleApp:
    """The handler for ``options`` (raises ValueError for a bad proxy or target)."""
    knobs = Knobs(latency_ms=options.latency_ms, failure_rate=options.failure_rate)
    port = DEFAULT_PORTS[options.app] if options.port is None else options.port
    label = ip_label(options.ip, port, env)
    if options.app == "world":
        return WorldApp(reactor, label, knobs)
    if options.app == "hello":
        proxy = proxy_from_env(env)
        client = HttpClient(reactor, proxy=proxy, timeout_s=options.timeout_ms / 1000.0)
        resolve_target(options.target, proxy)  # fail now, not on the first request
        return HelloApp(reactor, label, knobs, client, options.target)
    raise ValueError(f"unknown app {options.app!r}: expected hello or world")


def run_app(options: AppOptions) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if it could not start."""
    from twisted.internet import reactor

    start_logging()
    port = DEFAULT_PORTS[options.app] if options.port is None else options.port
    try:
        app = build_app(reactor, options)
        listening = listen(reactor, options.ip, port, app)
    except ValueError as e:
        print(f"l5d-twisted example {options.app}: {e}", file=sys.stderr)
        return 1
    except CannotListenError as e:
        print(
            f"l5d-twisted example {options.app}: cannot listen on {options.ip}:{port}: {e.socketError}",
            file=sys.stderr,
        )
        return 1
    bound: Any = listening.getHost()  # type: ignore[misc]
    app.set_label(ip_label(options.ip, bound.port))  # the port --port 0 picked
    extra = {}
    if isinstance(app, HelloApp):
        proxy = app.client.proxy
        extra = {
            "target": app.target,
            "proxy": f"{proxy[0]}:{proxy[1]}" if proxy else "none (direct)",
        }
    log.info(
        "{app} listening on {ip}:{port}",
        app=options.app,
        ip=bound.host,
        port=bound.port,
        latency_ms=options.latency_ms,
        failure_rate=options.failure_rate,
        pid=os.getpid(),
        **extra,
    )
    # The apps are benchmark backends: keep the objects of start-up (imports, mostly) out of
    # the full garbage collections, whose pauses would otherwise show up in the tail.
    gc.freeze()
    reactor.run()  # type: ignore[misc]  # installs SIGTERM/SIGINT -> stop
    log.info("{app} stopped", app=options.app)
    return 0
