"""The admin pages under their Content-Security-Policy, in headless Chromium (issue 10).

The policy must hold the pages to their own scripts, styles and fetches without breaking
them: each page is loaded with a listener for CSP violations, and must work and report
none (test_admin_dashboard_browser.py checks what they show, under the same headers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from admin_helpers import CHART_HAS_LINE_JS, CHROMIUM, PageErrors

from l5d_twisted.admin.server import CONTENT_SECURITY_POLICY

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]

# Records every CSP violation the page reports, before any of its scripts run.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def open_page(browser: Any, url: str) -> tuple[Any, PageErrors]:
    page = browser.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    errors = PageErrors(page)
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    return page, errors


def test_dashboard_works_under_the_policy(fake_admin: str, browser: Any) -> None:
    page, errors = open_page(browser, fake_admin + "/")
    page.wait_for_function(CHART_HAS_LINE_JS, arg="#router-outgoing .chart path.s0", timeout=20000)
    page.wait_for_selector("#services-outgoing tbody tr td:nth-child(2)", timeout=10000)
    # The stylesheet applied (a CSP-blocked sheet leaves the default display of a th).
    assert page.eval_on_selector(
        "link[rel=stylesheet]", "l => l.sheet !== null && l.sheet.cssRules.length > 0"
    )
    assert page.evaluate("window.__csp") == []
    assert errors.errors == []
    page.close()


def test_delegator_works_under_the_policy(fake_admin: str, browser: Any) -> None:
    page, errors = open_page(browser, fake_admin + "/delegator")
    page.wait_for_function("() => document.querySelectorAll('#router option').length == 2")
    page.fill("#path", "/svc/hello")
    page.click("button[type=submit]")
    page.wait_for_selector("#result pre.explanation")
    assert page.evaluate("window.__csp") == []
    assert errors.errors == []
    page.close()


def test_requests_page_works_under_the_policy(fake_admin: str, browser: Any) -> None:
    page, errors = open_page(browser, fake_admin + "/requests")
    assert page.eval_on_selector(
        "link[rel=stylesheet]", "l => l.sheet !== null && l.sheet.cssRules.length > 0"
    )
    assert page.evaluate("window.__csp") == []
    assert errors.errors == []
    page.close()


def test_an_inline_script_would_be_refused(fake_admin: str, browser: Any) -> None:
    """The policy is in force: what an injected script would do is blocked and reported."""
    page, _ = open_page(browser, fake_admin + "/delegator")
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; "
        "document.body.appendChild(s); }"
    )
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None
    assert any(v.startswith("script-src") for v in page.evaluate("window.__csp"))
    page.close()
