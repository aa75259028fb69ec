"""Helpers shared by the admin real-process tests: Prometheus, PromQL, Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from l5d_testing import Processes, free_port, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def http_get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def http_post(url: str, body: bytes, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(
        urllib.request.Request(url, data=body, method="POST"), timeout=timeout
    ) as response:
        return bytes(response.read())


def start_prometheus(processes: Processes, tmp_path: Path, target_port: int) -> int:
    """A real Prometheus on a free loopback port scraping our exposition every second."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "- job_name: l5d\n"
        "  metrics_path: /admin/metrics/prometheus\n"
        f"  static_configs:\n  - targets: ['127.0.0.1:{target_port}']\n"
    )
    processes.start(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        name="prometheus",
    )
    wait_until(
        lambda: http_get(f"http://127.0.0.1:{port}/-/ready") is not None,
        timeout=30,
        what="prometheus ready",
    )
    return port


class PromQL:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1/query?query="

    def vector(self, query: str) -> list[dict[str, Any]]:
        body = json.loads(http_get(self.base + urllib.parse.quote(query)))
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def scalar(self, query: str) -> float:
        result = self.vector(query)
        assert len(result) == 1, (query, result)
        return float(result[0]["value"][1])

    def by(self, query: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.vector(query)}

    def wait_for_scrapes(self, series: str, n: int, timeout: float = 60) -> None:
        query = f"count_over_time({series}[{n + 5}s])"
        wait_until(
            lambda: (
                self.vector(query) and max(float(r["value"][1]) for r in self.vector(query)) >= n
            ),
            timeout=timeout,
            interval=0.5,
            what=f"{n} scrapes of {series}",
        )


def near(value: float, want: float, tolerance: float) -> bool:
    return abs(value - want) <= tolerance * want


def chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def browser_session() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = chromium(p)
        try:
            yield browser
        finally:
            browser.close()


COUNT_COLOURS_JS = """async (b64) => {
  const img = new Image();
  img.src = "data:image/png;base64," + b64;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return seen.size;
}"""


def distinct_colours(browser: Any, png: bytes) -> int:
    """How many distinct colours a screenshot has (a blank page has one or two)."""
    page = browser.new_page()
    try:
        return int(page.evaluate(COUNT_COLOURS_JS, base64.b64encode(png).decode()))
    finally:
        page.close()


class PageErrors:
    """Collects console errors and uncaught exceptions of a page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))


CHART_HAS_LINE_JS = """(sel) => {
  const p = document.querySelector(sel);
  return !!p && /M[^M]*L/.test(p.getAttribute('d') || '');
}"""


def demo_extra_flags() -> list[str]:
    """Flags that keep a test's ``l5d-twisted demo`` off the default ports it would share
    with other demos: its control channel (``--control-port``), where the demo has one."""
    import subprocess
    import sys

    from l5d_testing import free_port

    usage = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return ["--control-port", str(free_port())] if "--control-port" in usage else []
