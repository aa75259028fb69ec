"""``routers[].httpAccessLog`` and its rotation keys (linkerd 1's AccessLogger and util-logging's
FileHandler): the line format, the file's roll policies, the bounded queue, and a real
``l5d-twisted run`` writing one line per proxied request."""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from l5d_testing import Processes, free_port, wait_for_port, wait_until

from l5d_twisted.config import load_config as load_config_text
from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.http.access_log import (
    DAILY,
    HOURLY,
    MAX_SIZE,
    NEVER,
    WEEKLY,
    AccessLogFile,
    RollPolicy,
    format_line,
    next_roll_time,
    parse_roll_policy,
)
from l5d_twisted.http.message import Headers, Request, Response
from l5d_twisted.request_context import CONNECTION, Connection


@pytest.fixture
def gmt() -> Iterator[None]:
    """Local time = GMT for the test (linkerd 1's test did the same)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "GMT"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


class _Unknown:
    """A streamed body of unknown length."""

    length = None


class _Peer:
    host = "10.1.2.3"
    port = 5555


class _Transport:
    def getPeer(self) -> _Peer:  # noqa: N802
        return _Peer()


def test_line_is_linkerd_1s(gmt: None) -> None:
    # linkerd 1's AccessLoggerTest: Wed, 06 Jan 2016 21:21:26 GMT
    request = Request(b"HEAD", b"/foo?bar=bah", Headers([(b"Host", b"monkeys")]))
    response = Response(402, Headers([(b"Content-Length", b"304374")]), body=_Unknown())
    assert (
        format_line(request, response, 1452115286)
        == 'monkeys 0.0.0.0 - - [06/01/2016:21:21:26 GMT] "HEAD /foo?bar=bah HTTP/1.1" 402 304374 "-" "-"'
    )


def test_line_has_client_ip_referer_agent_and_no_length(gmt: None) -> None:
    request = Request(
        b"get",
        b"http://web/a",
        Headers([(b"host", b"web"), (b"Referer", b"http://x/"), (b"User-Agent", b"curl/8.0")]),
        version=b"1.0",
    )
    request.ctx[CONNECTION] = Connection(_Transport())
    line = format_line(request, Response(200, body=_Unknown()), 0)
    assert line == (
        'web 10.1.2.3 - - [01/01/1970:00:00:00 GMT] "GET http://web/a HTTP/1.0" 200 - '
        '"http://x/" "curl/8.0"'
    )


def test_client_cannot_forge_fields(gmt: None) -> None:
    request = Request(b"GET", b"/", Headers([(b"User-Agent", b'a" 200 "b\\\x01\xff')]))
    line = format_line(request, Response(200), 0)
    assert line.endswith('"a\\" 200 \\"b\\\\\\x01\\xff"')
    assert line.count('"') - line.count('\\"') == 6  # request line, referer, agent


def test_roll_policies_parse_like_util_logging() -> None:
    assert parse_roll_policy("Never") == RollPolicy(NEVER)
    assert parse_roll_policy("hourly") == RollPolicy(HOURLY)
    assert parse_roll_policy("Daily") == RollPolicy(DAILY)
    assert parse_roll_policy("weekly(1)") == RollPolicy(WEEKLY, day_of_week=1)
    assert parse_roll_policy("3.megabytes") == RollPolicy(MAX_SIZE, max_bytes=3 * 1024**2)
    assert parse_roll_policy("1.gigabyte") == RollPolicy(MAX_SIZE, max_bytes=1024**3)
    for bad in ("weekly(8)", "monthly", "3MB", "0.bytes", "3.parsecs"):
        with pytest.raises(ValueError):
            parse_roll_policy(bad)


def test_roll_times_are_local_boundaries(gmt: None) -> None:
    opened = 1452115286  # Wed 06 Jan 2016 21:21:26
    assert next_roll_time(RollPolicy(HOURLY), opened) == 1452117600  # 22:00
    assert next_roll_time(RollPolicy(DAILY), opened) == 1452124800  # Thu 07 00:00
    # weekly(1): the midnight starting the next Sunday (10 Jan)
    assert next_roll_time(RollPolicy(WEEKLY, day_of_week=1), opened) == 1452384000
    assert next_roll_time(RollPolicy(NEVER), opened) is None


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_file_appends_or_truncates(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "access.log"  # the folder is made, as util-logging did
    first = AccessLogFile(str(path), RollPolicy(NEVER))
    first.write("one")
    first.close()
    again = AccessLogFile(str(path), RollPolicy(NEVER), append=True)
    again.write("two")
    again.close()
    assert _lines(path) == ["one", "two"]
    fresh = AccessLogFile(str(path), RollPolicy(NEVER), append=False)
    fresh.write("three")
    fresh.close()
    assert _lines(path) == ["three"]


def test_size_policy_rolls_and_keeps_rotate_count(tmp_path: Path, gmt: None) -> None:
    path = tmp_path / "access.log"
    now = [1452115286.0]
    log_file = AccessLogFile(
        str(path), RollPolicy(MAX_SIZE, max_bytes=10), rotate_count=2, clock=lambda: now[0]
    )
    for i in range(4):
        log_file.write(f"line-{i}")  # 7 bytes with its newline: one line per file
        assert log_file.flush()
        now[0] += 1
    log_file.close()
    assert _lines(path) == ["line-3"]
    rolled = sorted(p.name for p in tmp_path.iterdir() if p.name != "access.log")
    # named by the time each file was opened (yyyyMMdd-HHmmss); the oldest one went
    assert rolled == ["access-20160106-212127.log", "access-20160106-212128.log"]
    assert _lines(tmp_path / rolled[0]) == ["line-1"]
    assert _lines(tmp_path / rolled[1]) == ["line-2"]


def test_daily_policy_rolls_at_midnight(tmp_path: Path, gmt: None) -> None:
    path = tmp_path / "access.log"
    now = [1452115286.0]  # 06 Jan 21:21:26
    log_file = AccessLogFile(str(path), RollPolicy(DAILY), clock=lambda: now[0])
    log_file.write("before midnight")
    assert log_file.flush()
    now[0] = 1452124801.0  # 07 Jan 00:00:01
    log_file.write("after midnight")
    log_file.close()
    assert _lines(path) == ["after midnight"]
    assert _lines(tmp_path / "access-20160106.log") == ["before midnight"]


def test_a_slow_disk_drops_and_counts_instead_of_growing(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log_file = AccessLogFile(str(path), RollPolicy(NEVER), max_pending=3)
    release = threading.Event()
    taken = threading.Event()
    real = log_file._write_batch

    def slow(lines: list[str]) -> None:
        taken.set()
        release.wait(10)
        real(lines)

    log_file._write_batch = slow  # type: ignore[method-assign]
    log_file.write("first")  # taken by the writer, which then blocks
    assert taken.wait(10)
    for i in range(10):
        log_file.write(f"queued-{i}")
    assert log_file.dropped == 7
    release.set()
    log_file.close()
    assert _lines(path) == ["first", "queued-0", "queued-1", "queued-2"]


def test_check_refuses_a_bad_roll_policy() -> None:
    with pytest.raises(ConfigErrors) as e:
        load_config_text(
            "routers:\n- protocol: http\n  httpAccessLog: a.log\n  httpAccessLogRollPolicy: monthly\n"
        )
    assert "httpAccessLogRollPolicy" in str(e.value)
    assert "weekly(n)" in str(e.value)
    config = load_config_text(
        "routers:\n- protocol: http\n  httpAccessLog: a.log\n"
        "  httpAccessLogRollPolicy: 3.megabytes\n  httpAccessLogAppend: false\n"
        "  httpAccessLogRotateCount: 4\n"
    )
    router = config.routers[0]
    assert router.http_access_log == "a.log"
    assert router.http_access_log_roll_policy == "3.megabytes"
    assert router.http_access_log_append is False
    assert router.http_access_log_rotate_count == 4
    default = load_config_text("routers:\n- protocol: http\n").routers[0]
    assert default.http_access_log is None
    assert default.http_access_log_roll_policy == "never"
    assert default.http_access_log_append is True
    assert default.http_access_log_rotate_count == -1


def test_no_access_log_no_module() -> None:
    from l5d_twisted.protocols.http import HTTP

    assert HTTP.router_addons is not None
    router = load_config_text("routers:\n- protocol: http\n").routers[0]
    addons = HTTP.router_addons(None, router)
    assert addons.edits == () and addons.closers == ()


_LINE = re.compile(
    r"^world 127\.0\.0\.1 - - \[\d\d/\d\d/\d{4}:\d\d:\d\d:\d\d \S+\] "
    r'"GET http://world/hello HTTP/1\.1" 200 (\d+) "-" "access-log-test"$'
)


def test_a_real_router_writes_one_line_per_response(processes: Processes, tmp_path: Path) -> None:
    world_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    disco = tmp_path / "disco"
    disco.mkdir()
    (disco / "world").write_text(f"127.0.0.1 {world_port}\n")
    access_log = tmp_path / "access.log"
    config = tmp_path / "linkerd.yaml"
    config.write_text(
        f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
namers:
- kind: io.l5d.fs
  rootDir: {disco}
routers:
- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  httpAccessLog: {access_log}
  servers:
  - ip: 127.0.0.1
    port: {proxy_port}
"""
    )
    mesh = processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", world_port)
    wait_for_port("127.0.0.1", proxy_port)
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        conn.request("GET", "http://world/hello", headers={"User-Agent": "access-log-test"})
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200
        conn.close()
    lines = wait_until(
        lambda: access_log.exists() and len(_lines(access_log)) == 2 and _lines(access_log),
        what="two access log lines",
    )
    assert isinstance(lines, list)
    for line in lines:
        match = _LINE.match(line)
        assert match is not None, line
        assert int(match.group(1)) == len(body)
    # a request no client answered (no such name) writes no line, as in linkerd 1
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    conn.request("GET", "http://nowhere/")
    assert conn.getresponse().status >= 400
    conn.close()
    assert processes.stop(mesh) == 0
    assert len(_lines(access_log)) == 2


def test_a_roll_policy_needs_a_single_process() -> None:
    text = "workers: {w}\nrouters:\n- protocol: http\n  httpAccessLog: a.log\n  httpAccessLogRollPolicy: {p}\n"
    with pytest.raises(ConfigErrors) as e:
        load_config_text(text.format(w=2, p="daily"))
    assert "routers[0].httpAccessLogRollPolicy: with workers: 2 every worker would roll" in str(
        e.value
    )
    with pytest.raises(ConfigErrors):
        load_config_text(text.format(w="auto", p="3.megabytes"))
    assert load_config_text(text.format(w=2, p="never")).routers[0].http_access_log == "a.log"
    assert load_config_text(text.format(w=1, p="daily")).routers[0].http_access_log == "a.log"


def test_each_batch_is_one_append_so_processes_sharing_the_file_keep_whole_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "access.log"
    one = AccessLogFile(str(path), RollPolicy(NEVER))
    two = AccessLogFile(str(path), RollPolicy(NEVER))  # as a second worker would
    for i in range(200):
        one.write(f"one-{i:03d} " + "x" * 100)
        two.write(f"two-{i:03d} " + "y" * 100)
    one.close()
    two.close()
    lines = _lines(path)
    assert len(lines) == 400
    assert all(re.fullmatch(r"(one-\d{3} x{100})|(two-\d{3} y{100})", line) for line in lines)
