"""Smoke checks of a running mesh: what ``l5d-twisted smoke`` and the chart's ``helm test``
pods run.

Each check is one HTTP question with a definite expected answer; :func:`run_check` asks it
again until it is answered as expected or the check's deadline passes (a freshly installed
release needs a while: pods start, endpoints appear, Prometheus scrapes twice before a rate
exists).  The result says what was asked, what was answered last and how long it took, so a
failure names its cause instead of a bare "failed".

The checks are plain blocking HTTP (``http.client``): a smoke test is a short-lived client
process that waits, and nothing here serves.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class SmokeFailure(Exception):
    """One attempt's answer was not the expected one (the message says what it was)."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def text(self, limit: int = 200) -> str:
        shown = self.body.decode("utf-8", "replace").strip()
        return shown if len(shown) <= limit else shown[:limit] + "..."


def http_get(
    url: str, timeout_s: float, proxy: str | None = None, headers: dict[str, str] | None = None
) -> HttpAnswer:
    """GET ``url``; through the HTTP proxy ``host:port`` if given (absolute-form request
    target, as ``http_proxy=`` clients send it).  Network errors raise SmokeFailure."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmokeFailure(f"not an http(s) URL: {url!r}")
    request_headers = {"User-Agent": "l5d-twisted-smoke", "Accept": "*/*"}
    request_headers.update(headers or {})
    if proxy is not None:
        host, port = split_host_port(proxy, default_port=4140)
        conn: http.client.HTTPConnection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        target = url
        where = f"proxy {proxy}"
    else:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, port, timeout=timeout_s)
        target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        where = f"{parts.hostname}:{port}"
    try:
        conn.request("GET", target, headers=request_headers)
        response = conn.getresponse()
        body = response.read()
        return HttpAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    except (OSError, http.client.HTTPException) as e:
        raise SmokeFailure(f"no answer from {where}: {e.__class__.__name__}: {e}") from e
    finally:
        conn.close()


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``, or a bare host) -> (host, port); bad input raises ValueError."""
    text = text.strip()
    if text.startswith("http://"):
        text = text[len("http://") :].rstrip("/")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"no host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def expect_ok(answer: HttpAnswer, what: str) -> None:
    if answer.status != 200:
        detail = answer.headers.get("l5d-err")
        reason = urllib.parse.unquote(detail) if detail else answer.text()
        raise SmokeFailure(f"{what} answered HTTP {answer.status}: {reason}")


def expect_json(answer: HttpAnswer, what: str) -> Any:
    expect_ok(answer, what)
    try:
        return json.loads(answer.body)
    except ValueError as e:
        raise SmokeFailure(f"{what} answered something that is not JSON: {answer.text()!r}") from e


class Check(Protocol):
    @property
    def name(self) -> str:
        """Short name of the check, shown in the results."""
        ...

    def attempt(self, timeout_s: float) -> str:
        """Ask once: return what passed, or raise SmokeFailure saying what was wrong."""
        ...


@dataclass(frozen=True)
class AdminPing:
    """The mesh's admin server answers ``/admin/ping`` with ``pong``."""

    admin_url: str
    name: str = "admin"

    def attempt(self, timeout_s: float) -> str:
        url = self.admin_url.rstrip("/") + "/admin/ping"
        answer = http_get(url, timeout_s)
        expect_ok(answer, url)
        if answer.body.strip() != b"pong":
            raise SmokeFailure(f"{url} answered {answer.text()!r}, not 'pong'")
        return f"{url} answered pong"


@dataclass(frozen=True)
class ProxyRequest:
    """A request through the mesh's HTTP proxy gets the sample app's answer."""

    proxy: str
    target: str = "http://hello/"
    expect: str = r"Hello .*world"
    name: str = "proxy"

    def attempt(self, timeout_s: float) -> str:
        answer = http_get(self.target, timeout_s, proxy=self.proxy)
        expect_ok(answer, f"{self.target} via proxy {self.proxy}")
        text = answer.text()
        if not re.search(self.expect, text):
            raise SmokeFailure(
                f"{self.target} via proxy {self.proxy} answered {text!r}, which does not match /{self.expect}/"
            )
        return f"{self.target} via proxy {self.proxy} answered {text!r}"


@dataclass(frozen=True)
class PrometheusScrapes:
    """Prometheus has the mesh's targets, all up, and sees requests flowing through them."""

    prometheus_url: str
    job: str = "l5d-twisted"
    name: str = "prometheus"

    def query(self, expr: str, timeout_s: float) -> list[dict[str, Any]]:
        url = (
            self.prometheus_url.rstrip("/")
            + "/api/v1/query?"
            + urllib.parse.urlencode({"query": expr})
        )
        body = expect_json(http_get(url, timeout_s), f"Prometheus query {expr!r}")
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SmokeFailure(f"Prometheus query {expr!r} failed: {body!r:.200}")
        return list(body.get("data", {}).get("result", []))

    def attempt(self, timeout_s: float) -> str:
        targets = self.query(f'up{{job="{self.job}"}}', timeout_s)
        if not targets:
            raise SmokeFailure(
                f"Prometheus has no target of job {self.job!r} (is the mesh discovered?)"
            )
        down = [t["metric"].get("instance", "?") for t in targets if t["value"][1] != "1"]
        if down:
            raise SmokeFailure(
                f"{len(down)} of {len(targets)} mesh targets down: {', '.join(sorted(down))}"
            )
        up = f"{len(targets)} mesh target{'s' if len(targets) != 1 else ''} up"
        rate_expr = f'sum(rate(rt:server:requests{{job="{self.job}"}}[1m]))'
        rate = self.query(rate_expr, timeout_s)
        value = float(rate[0]["value"][1]) if rate else 0.0
        if not value > 0:
            raise SmokeFailure(f"{up}, but no requests yet ({rate_expr} = {value})")
        return f"{up}, {value:.2f} requests/s"


@dataclass(frozen=True)
class GrafanaServes:
    """Grafana is healthy and serves the provisioned dashboards."""

    grafana_url: str
    dashboard_uids: Sequence[str] = ("l5d-twisted-top-line", "l5d-twisted-process")
    basic_auth: str | None = None
    name: str = "grafana"

    def headers(self) -> dict[str, str]:
        if not self.basic_auth:
            return {}
        return {"Authorization": "Basic " + base64.b64encode(self.basic_auth.encode()).decode()}

    def attempt(self, timeout_s: float) -> str:
        base = self.grafana_url.rstrip("/")
        health = expect_json(
            http_get(base + "/api/health", timeout_s, headers=self.headers()), f"{base}/api/health"
        )
        if not isinstance(health, dict) or health.get("database") != "ok":
            raise SmokeFailure(f"{base}/api/health reports {health!r:.200}")
        titles = []
        for uid in self.dashboard_uids:
            url = f"{base}/api/dashboards/uid/{urllib.parse.quote(uid)}"
            body = expect_json(http_get(url, timeout_s, headers=self.headers()), url)
            dashboard = body.get("dashboard", {}) if isinstance(body, dict) else {}
            if dashboard.get("uid") != uid or not dashboard.get("panels"):
                raise SmokeFailure(f"{url} has no dashboard {uid!r} with panels")
            titles.append(str(dashboard.get("title", uid)))
        version = health.get("version", "?")
        return f"Grafana {version} healthy, serving " + (
            ", ".join(repr(t) for t in titles) or "no dashboard asked"
        )


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    attempts: int
    elapsed_s: float
    errors: list[str] = field(default_factory=list)


def run_check(
    check: Check,
    timeout_s: float,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[str, str], None] | None = None,
) -> CheckResult:
    """Attempt ``check`` until it passes or ``timeout_s`` has passed since the first attempt."""
    start = clock()
    deadline = start + timeout_s
    attempts = 0
    errors: list[str] = []
    while True:
        attempts += 1
        remaining = max(deadline - clock(), 0.5)
        try:
            detail = check.attempt(min(remaining, 10.0))
            return CheckResult(check.name, True, detail, attempts, clock() - start, errors)
        except SmokeFailure as e:
            reason = str(e)
        if not errors or errors[-1] != reason:
            errors.append(reason)
            if on_retry is not None:
                on_retry(check.name, reason)
        if clock() + interval_s > deadline:
            return CheckResult(check.name, False, reason, attempts, clock() - start, errors)
        sleep(interval_s)
