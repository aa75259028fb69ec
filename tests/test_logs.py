"""One structured logger: JSON lines with the same fields for the mesh and the sample apps."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from l5d_testing import Processes, free_port, wait_until
from twisted.logger import Logger
from twisted.python.failure import Failure

from l5d_twisted import logs
from l5d_twisted.examples import runner

RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def lines_of(fmt: str = "json", level: str = "info", emit: Any = None) -> list[str]:
    out = io.StringIO()
    log = Logger(namespace="l5d_twisted.router.router", observer=logs.observer(fmt, level, out))
    emit(log)
    return out.getvalue().splitlines()


def test_a_line_has_time_level_ns_msg_and_the_events_fields() -> None:
    class Peer:
        def __repr__(self) -> str:
            return "<peer 127.0.0.1:5000>"

    (line,) = lines_of(
        emit=lambda log: log.info(
            "router {router} serving on {port}",
            router="out",
            port=4140,
            ok=True,
            ratio=0.5,
            none=None,
            peer=Peer(),
            _private=1,
        )
    )
    record = json.loads(line)
    assert RFC3339_MS.fullmatch(record.pop("time")), line
    assert record == {
        "level": "info",
        "ns": "l5d_twisted.router.router",
        "msg": "router out serving on 4140",
        "router": "out",
        "port": 4140,
        "ok": True,
        "ratio": 0.5,
        "none": None,
        "peer": "<peer 127.0.0.1:5000>",
    }


def test_a_failure_is_logged_with_its_traceback_and_fields_do_not_replace_the_line_fields() -> None:
    try:
        raise ValueError("bad backend answer")
    except ValueError:
        failure = Failure()
    (line,) = lines_of(
        emit=lambda log: log.failure("request failed", failure, msg="not me", ns="nor me")
    )
    record = json.loads(line)
    assert (
        record["level"] == "critical"
        and record["msg"] == "request failed"
        and record["ns"] == "l5d_twisted.router.router"
    )
    assert "ValueError: bad backend answer" in record["error"]


def test_the_level_filters_and_text_is_one_plain_line() -> None:
    def emit(log: Logger) -> None:
        log.debug("hidden")
        log.info("hidden too")
        log.warn("client {client} down", client="/#/io.l5d.fs/world")

    (line,) = lines_of(level="warn", emit=emit)
    assert json.loads(line)["level"] == "warn"
    (text,) = lines_of(fmt="text", level="warn", emit=emit)
    assert re.fullmatch(r"\d\d:\d\d:\d\d warn  client /#/io\.l5d\.fs/world down", text), text


def test_a_broken_stdout_does_not_break_the_emitter() -> None:
    out = io.StringIO()
    out.close()
    Logger(observer=logs.observer("json", "info", out)).info("nobody reads this")  # no exception


def test_the_mesh_and_the_sample_apps_share_the_logger(
    processes: Processes, tmp_path: Path
) -> None:
    assert runner.start_logging is logs.start_logging
    app_port, router_port, admin_port = free_port(), free_port(), free_port()
    config = tmp_path / "mesh.yaml"
    config.write_text(
        f"admin: {{ip: 127.0.0.1, port: {admin_port}}}\n"
        f"routers:\n- label: out\n  dtab: /svc => /$/inet/127.0.0.1/{app_port}\n"
        f"  servers: [{{ip: 127.0.0.1, port: {router_port}}}]\n"
    )
    app = processes.l5d(
        "example", "world", "--ip", "127.0.0.1", "--port", str(app_port), name="world"
    )
    mesh = processes.l5d("run", str(config), name="mesh")

    def records(proc: Any, wanted: str) -> list[dict[str, Any]] | None:
        text = processes.log(proc)
        if wanted not in text:
            assert proc.poll() is None, text
            return None
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    app_lines: Any = wait_until(lambda: records(app, "listening"), what="the app's first log line")
    mesh_lines: Any = wait_until(
        lambda: records(mesh, "serving on"), what="the mesh's first log lines"
    )
    for record in [*app_lines, *mesh_lines]:
        assert set(logs.FIELDS) <= set(record) and RFC3339_MS.fullmatch(record["time"]), record
    listening = next(r for r in app_lines if "listening" in r["msg"])
    assert (
        listening["ns"] == "l5d_twisted.examples.runner"
        and listening["port"] == app_port
        and listening["app"] == "world"
    )
    serving = next(r for r in mesh_lines if "serving on" in r["msg"])
    assert (
        serving["ns"] == "l5d_twisted.mesh"
        and serving["router"] == "out"
        and serving["port"] == router_port
    )
