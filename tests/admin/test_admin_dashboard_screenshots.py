"""Screenshots of the dashboard under the demo's traffic with one world instance failing.

``l5d-twisted demo --traffic`` runs the real mesh (outgoing and incoming routers, hello,
two world instances); world-2 answers every request with a 500 (``/setFailureRate 1``),
so the incoming router's failure accrual ejects it.  Headless Chromium (the system's, with
the project's flags) loads the dashboard at desktop (1280x800) and phone (390x844) width;
the test checks the per-endpoint table (world-2 ejected, world-1 ok), that each router's
top success rate is the weighted success of its services over the same window (in the
data endpoint and in what the page shows), the y axes, and that recent requests name the
endpoint that answered; then saves the full-page PNGs under ``$L5D_ARTIFACTS`` (default
``build/artifacts/dashboard/``) and prints the folder, for CI to keep as artifacts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import (
    CHART_HAS_LINE_JS,
    CHROMIUM,
    PageErrors,
    browser_session,
    demo_extra_flags,
    distinct_colours,
    http_get,
    http_post,
)
from l5d_testing import Processes, free_port, wait_for_port, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]

RPS = 20
ROOT = Path(__file__).resolve().parents[2]
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("L5D_ARTIFACTS") or ROOT / "build" / "artifacts") / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Demo:
    admin: str
    ports: dict[str, int]

    def endpoint(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("demo")
    processes = Processes(tmp)
    ports = {
        name: free_port() for name in ("outgoing", "incoming", "admin", "hello", "world1", "world2")
    }
    try:
        proc = processes.l5d(
            "demo",
            "--traffic", str(RPS),
            "--outgoing-port", str(ports["outgoing"]),
            "--incoming-port", str(ports["incoming"]),
            "--admin-port", str(ports["admin"]),
            "--hello-port", str(ports["hello"]),
            "--world-ports", f"{ports['world1']},{ports['world2']}",
            "--dir", str(tmp / "demo"),
            *demo_extra_flags(),
            name="demo",
        )  # fmt: skip
        for name in ("admin", "world1", "world2", "outgoing"):
            try:
                wait_for_port("127.0.0.1", ports[name], timeout=45)
            except AssertionError:
                raise AssertionError(
                    f"demo did not start {name}:\n{processes.log(proc)[-3000:]}"
                ) from None
        http_post(f"http://127.0.0.1:{ports['world2']}/setFailureRate", b"1")
        yield Demo(f"http://127.0.0.1:{ports['admin']}", ports)
    finally:
        processes.stop_all()


def dashboard(demo: Demo) -> dict[str, Any]:
    return dict(json.loads(http_get(demo.admin + "/admin/dashboard.json")))


def world_endpoints(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The incoming router's world client's endpoint rows by address."""
    (incoming,) = [r for r in data["routers"] if r["label"] == "incoming"]
    rows = [c for c in incoming["clients"] if c["name"].endswith("/world")]
    return {e["address"]: e for c in rows for e in c.get("endpoints", [])}


def settled(demo: Demo) -> dict[str, Any] | None:
    """Dashboard data once a whole window is sampled, world-2 is ejected and world-1 serves."""
    data = dashboard(demo)
    if any(r["current"]["window_s"] != data["window_s"] for r in data["routers"]):
        return None  # a whole window of history first
    rows = world_endpoints(data)
    bad, good = rows.get(demo.endpoint("world2")), rows.get(demo.endpoint("world1"))
    if bad is None or good is None or bad["state"] not in ("ejected", "probing"):
        return None
    if good["window_requests"] < 20 or good["success_rate"] != 1.0:
        return None
    return data


def assert_top_line_is_weighted_service_success(router: dict[str, Any]) -> None:
    services, current = router["services"], router["current"]
    success = sum(s["window_success"] for s in services)
    failures = sum(s["window_failures"] for s in services)
    assert success + failures > 0, router["label"]
    assert current["success_rate"] == round(success / (success + failures), 4), router["label"]
    assert current["rps"] == round(sum(s["rps"] or 0 for s in services), 3), router["label"]
    assert current["window_s"] == max(s["window_s"] for s in services if s["window_s"])


# In the page: each router's top success figure against its service rows' window counts
# (the data attributes of the same render), and the window the labels name.
DOM_TOP_LINE_JS = """() => Array.from(document.querySelectorAll('section.router')).map(sec => {
  const label = sec.id.replace('router-', '');
  const rows = Array.from(sec.querySelectorAll('#services-' + label + ' > tbody > tr[data-name]'));
  const s = rows.reduce((a, r) => a + Number(r.getAttribute('data-window-success')), 0);
  const f = rows.reduce((a, r) => a + Number(r.getAttribute('data-window-failures')), 0);
  const fig = sec.querySelector('.figure[data-key=success]');
  return {label: label, success: s, failures: f, shown: fig.querySelector('b').textContent,
          caption: fig.querySelector('span').textContent};
})"""

ENDPOINT_ROWS_JS = """() => Array.from(document.querySelectorAll(
  '#clients-incoming table.endpoints tbody tr')).map(r => ({
    address: r.getAttribute('data-address'), state: r.getAttribute('data-state'),
    cells: Array.from(r.cells).map(c => c.textContent)}))"""

# Records every CSP violation before the page's scripts run (as the CSP test does).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective));
"""

AXES_JS = """() => Array.from(document.querySelectorAll('#router-outgoing .chart .yaxis'))
  .map(a => Array.from(a.children).map(s => s.textContent))"""


def test_dashboard_screenshots_with_one_world_instance_failing(demo: Demo) -> None:
    data = wait_until(lambda: settled(demo), timeout=120, interval=1.0, what="world-2 ejected")
    assert isinstance(data, dict)
    assert data["window_s"] == 30.0
    for router in data["routers"]:
        assert_top_line_is_weighted_service_success(router)
    rows = world_endpoints(data)
    assert rows[demo.endpoint("world2")]["success_rate"] in (0.0, None)
    # Per hop: one request to hello is hello's and world's on the outgoing router.
    (outgoing,) = [r for r in data["routers"] if r["label"] == "outgoing"]
    assert {s["name"] for s in outgoing["services"]} == {"svc/hello", "svc/world"}

    # Recent requests (the incoming router's) name the world instance that answered.
    recent = json.loads(http_get(demo.admin + "/requests.json"))
    answered = {r["endpoint"] for r in recent if r["router"] == "incoming"}
    assert answered and answered <= {
        demo.endpoint("world1"),
        demo.endpoint("world2"),
        demo.endpoint("hello"),
    }, answered

    folder = artifacts_dir()
    print(f"\ndashboard screenshots in {folder}")
    for browser in browser_session():
        for name, (width, height) in VIEWPORTS.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            page.add_init_script(RECORD_VIOLATIONS)
            errors = PageErrors(page)
            page.goto(demo.admin + "/")
            page.wait_for_function(
                CHART_HAS_LINE_JS, arg="#router-outgoing .chart path.s0", timeout=30000
            )
            page.wait_for_selector("#clients-incoming table.endpoints tbody tr", timeout=30000)
            endpoints = {r["address"]: r for r in page.evaluate(ENDPOINT_ROWS_JS)}
            assert endpoints[demo.endpoint("world2")]["state"] in ("ejected", "probing")
            assert endpoints[demo.endpoint("world1")]["state"] == "ok"
            for top in page.evaluate(DOM_TOP_LINE_JS):
                decided = top["success"] + top["failures"]
                assert decided > 0, top
                assert top["shown"].endswith("%") and top["caption"].endswith("(30 s)"), top
                # Shown with 2 decimals of a percent, computed from the 4-digit rounded rate.
                assert abs(float(top["shown"][:-1]) / 100 - top["success"] / decided) <= 1.01e-4
            assert "last 30 s" in (page.text_content("#window") or "")
            axes = page.evaluate(AXES_JS)
            assert len(axes) == 3 and all(len(a) == 3 and all(a) for a in axes), axes
            assert axes[0] == ["100.0%", "50.0%", "0.0%"] and axes[1][0].endswith("/s")
            assert axes[2][0].endswith("ms"), axes
            assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
            shot = page.screenshot(full_page=True)
            path = folder / f"dashboard-{name}-{width}x{height}.png"
            path.write_bytes(shot)
            assert distinct_colours(browser, shot) > 20
            assert errors.errors == [] and page.evaluate("window.__csp") == []
            page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(demo.admin + "/requests")
        assert "endpoint" in (page.text_content("thead") or "")
        (folder / "requests-desktop-1280x800.png").write_bytes(page.screenshot(full_page=True))
        page.close()
    print("\n".join(f"  {p}" for p in sorted(folder.glob("*.png"))))
