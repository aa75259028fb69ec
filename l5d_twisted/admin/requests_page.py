"""``/requests``: the recent requests as an HTML table (refreshes itself every 5 s)."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from l5d_twisted.telemetry.recent import RequestRecord

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>Recent requests - l5d-twisted</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css">
</head><body>
<header><h1><a href="/">l5d-twisted</a> recent requests</h1>
<nav><a href="/">dashboard</a> <a href="/delegator">delegator</a> <a href="/requests.json">json</a></nav></header>
<main>{note}
<div class="scroll"><table class="data">
<thead><tr><th>time</th><th>router</th><th>method</th><th>uri</th><th>service</th><th>client</th><th>endpoint</th><th>status</th><th>ms</th><th>error</th></tr></thead>
<tbody>
{rows}
</tbody></table></div></main></body></html>
"""

_DISABLED = "<p>Enable the <code>io.l5d.recentRequests</code> telemeter to record requests.</p>"


def clock_text(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def render_requests_page(records: Sequence[RequestRecord] | None) -> bytes:
    """``records`` newest first, or None when the telemeter is not configured."""
    rows = []
    for r in records or ():
        cells = (
            clock_text(r.time),
            r.router,
            r.method,
            r.uri,
            r.dst_path,
            r.client_id,
            r.endpoint,
            "" if r.status is None else str(r.status),
            f"{r.latency_ms:.1f}",
            r.error or "",
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return _PAGE.format(
        rows="\n".join(rows), note="" if records is not None else _DISABLED
    ).encode()
