"""``routers[].httpAccessLog``: linkerd 1's HTTP access log, one line per answered request.

linkerd 1 put its ``AccessLogger`` at the top of the client stack (per bound name), so a
line is written for every response an upstream gave (each retry attempt included); a
request that never reached a client (no route, binding timeout) or whose client failed
writes none.  The same here: :func:`access_log_edit` inserts the filter before the client
layer's ``stats``, and only when the router names a file (no module otherwise).

The line is linkerd 1's (Apache common log format with the Host first and the combined
format's referer and user agent)::

    <Host> <client ip> - - [dd/MM/yyyy:HH:mm:ss zone] "<METHOD> <uri> HTTP/1.1" <status>
        <length or -> "<Referer>" "<User-Agent>"      (one line)

with its local-time timestamp (``06/01/2016:21:21:26 GMT``: numeric month, as linkerd 1
wrote it).  Unlike linkerd 1, ``"``, ``\\`` and non-printable bytes in the logged fields are
escaped as Apache 2 does (``\\"``, ``\\\\``, ``\\xhh``), so a client cannot forge fields.

Rotation is util-logging's ``FileHandler`` (linkerd 1's): ``httpAccessLogRollPolicy``
``never`` | ``hourly`` | ``daily`` | ``weekly(n)`` (n: 1 Sunday .. 7 Saturday, rolls at the
midnight starting that day) | a size (``3.megabytes``, ``1.gigabyte``, ``512.kilobytes``:
powers of 1024); a rolled file is renamed ``<name>-<suffix><ext>`` (``access-20160106.log``;
suffix ``yyyyMMdd-HH`` hourly, ``yyyyMMdd`` daily and weekly, ``yyyyMMdd-HHmmss`` by size,
from the time the file was opened), ``httpAccessLogRotateCount`` rolled files are kept (-1:
all), ``httpAccessLogAppend: false`` truncates the file at start-up.

Writes never block the reactor: the reactor appends the line to a bounded queue
(``MAX_PENDING_LINES``) and one thread per file writes them in batches; when the disk
cannot keep up, lines beyond the bound are dropped and counted (``dropped``, logged).
"""

from __future__ import annotations

import datetime
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from l5d_twisted.http.message import Request, Response
from l5d_twisted.request_context import CONNECTION
from l5d_twisted.router.stacks import StackEdit
from l5d_twisted.service import Filter, Module, Params, Service

log = Logger()

MAX_PENDING_LINES = 10_000
"""Lines waiting for the writer thread at most; more are dropped (and counted)."""

ROLE = "httpAccessLog"

# -- roll policies (util-logging's Policy.parse) -------------------------------------------

NEVER = "never"
HOURLY = "hourly"
DAILY = "daily"
WEEKLY = "weekly"
MAX_SIZE = "size"

_WEEKLY = re.compile(r"weekly\(([1-7])\)", re.IGNORECASE)
_SIZE = re.compile(r"(\d+)\.([a-z]+)")
_UNITS = {
    "byte": 1,
    "kilobyte": 1024,
    "megabyte": 1024**2,
    "gigabyte": 1024**3,
    "terabyte": 1024**4,
}


@dataclass(frozen=True)
class RollPolicy:
    kind: str
    day_of_week: int = 0  # weekly: 1 Sunday .. 7 Saturday (java.util.Calendar)
    max_bytes: int = 0  # by size


def parse_roll_policy(text: str) -> RollPolicy:
    """``never``, ``hourly``, ``daily``, ``weekly(n)`` or a size such as ``3.megabytes``
    (ValueError otherwise, naming what is accepted)."""
    lowered = text.strip().lower()
    if lowered in (NEVER, HOURLY, DAILY):
        return RollPolicy(lowered)
    weekly = _WEEKLY.fullmatch(lowered)
    if weekly is not None:
        return RollPolicy(WEEKLY, day_of_week=int(weekly.group(1)))
    size = _SIZE.fullmatch(lowered)
    if size is not None:
        unit = size.group(2)
        unit = unit[:-1] if unit.endswith("s") else unit
        if unit in _UNITS and int(size.group(1)) > 0:
            return RollPolicy(MAX_SIZE, max_bytes=int(size.group(1)) * _UNITS[unit])
    raise ValueError(
        f"expected never, hourly, daily, weekly(n) with n 1 (Sunday) to 7, or a size such as "
        f"3.megabytes (bytes, kilobytes, megabytes, gigabytes, terabytes), got {text!r}"
    )


def check_roll_policy(text: str) -> None:
    parse_roll_policy(text)


def next_roll_time(policy: RollPolicy, opened: float) -> float | None:
    """When a file opened at ``opened`` (epoch seconds) rolls, in local time (None: never by time)."""
    if policy.kind not in (HOURLY, DAILY, WEEKLY):
        return None
    at = datetime.datetime.fromtimestamp(opened).replace(minute=0, second=0, microsecond=0)
    if policy.kind == HOURLY:
        return (at + datetime.timedelta(hours=1)).timestamp()
    at = at.replace(hour=0) + datetime.timedelta(days=1)
    if policy.kind == WEEKLY:
        while at.isoweekday() % 7 + 1 != policy.day_of_week:
            at += datetime.timedelta(days=1)
    return at.timestamp()


def _time_suffix(policy: RollPolicy, opened: float) -> str:
    formats = {HOURLY: "%Y%m%d-%H", DAILY: "%Y%m%d", WEEKLY: "%Y%m%d", MAX_SIZE: "%Y%m%d-%H%M%S"}
    return time.strftime(formats.get(policy.kind, "%Y"), time.localtime(opened))


# -- the line ------------------------------------------------------------------------------

_UNSAFE = re.compile(rb'[^\x20-\x7e]|["\\]')


def _escape(value: bytes) -> str:
    def one(m: re.Match[bytes]) -> bytes:
        c = m.group(0)
        return b"\\" + c if c in (b'"', b"\\") else b"\\x%02x" % c[0]

    return _UNSAFE.sub(one, value).decode("ascii")


def _client_ip(request: Request) -> str:
    connection = request.ctx.get(CONNECTION)
    peer = connection.peer if connection is not None else None
    host = getattr(peer, "host", None)
    return str(host) if host else "0.0.0.0"  # Finagle's remoteHost when it is unknown


def format_line(request: Request, response: Response, now: float) -> str:
    """linkerd 1's access log line for one answered request (no newline)."""
    headers = request.headers
    host = _escape(headers.get(b"host") or b"-")
    referer = _escape(headers.get(b"referer") or b"-")
    agent = _escape(headers.get(b"user-agent") or b"-")
    line = _escape(b"%s %s HTTP/%s" % (request.method.upper(), request.uri, request.version))
    # framing travels with the body here (a Content-Length field is not kept on the message)
    length = getattr(response.body, "length", None)
    if length is not None:
        size = str(length)
    else:
        field = response.headers.get(b"content-length")
        size = _escape(field) if field is not None else "-"
    stamp = time.strftime("%d/%m/%Y:%H:%M:%S %Z", time.localtime(now))
    return (
        f'{host} {_client_ip(request)} - - [{stamp}] "{line}" {response.status} {size} '
        f'"{referer}" "{agent}"'
    )


# -- the file ------------------------------------------------------------------------------


class AccessLogFile:
    """One access log file, written by its own thread in batches, rolled by ``policy``.

    ``write`` (on the reactor) only queues the line; ``close`` writes what is queued and
    stops the thread.  ``clock`` gives epoch seconds (tests pass their own).
    """

    def __init__(
        self,
        path: str,
        policy: RollPolicy,
        *,
        append: bool = True,
        rotate_count: int = -1,
        max_pending: int = MAX_PENDING_LINES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.path.abspath(path)  # relative: to the working directory, as linkerd 1
        self.policy = policy
        self.rotate_count = rotate_count
        self.max_pending = max_pending
        self.clock = clock
        self.dropped = 0
        self.written = 0
        self._pending: deque[str] = deque()
        self._busy = False  # the thread holds a batch it has not written yet
        self._closing = False
        self._cond = threading.Condition()
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        # unbuffered: each batch is one write(2) in append mode, so the workers of a mesh
        # sharing the file never interleave within a line
        self._file: BinaryIO = open(self.path, "ab" if append else "wb", buffering=0)  # noqa: SIM115
        self._opened = clock()
        self._next_roll = next_roll_time(policy, self._opened)
        self._size = self._file.tell() if append else 0
        self._thread = threading.Thread(
            target=self._run, name=f"access-log {os.path.basename(self.path)}", daemon=True
        )
        self._thread.start()

    def write(self, line: str) -> None:
        with self._cond:
            if len(self._pending) >= self.max_pending or self._closing:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10_000 == 0:
                    log.warn(
                        "access log {path}: the disk does not keep up, {dropped} lines dropped",
                        path=self.path,
                        dropped=self.dropped,
                    )
                return
            self._pending.append(line)
            if len(self._pending) == 1:
                self._cond.notify()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued line is written (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(10.0)

    # -- the writer thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                batch = list(self._pending)
                self._pending.clear()
                self._busy = True
                closing = self._closing
            try:
                self._write_batch(batch)
            except OSError as e:
                log.error("access log {path}: {error}", path=self.path, error=str(e))
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            if closing:
                self._file.close()
                return

    def _write_batch(self, lines: list[str]) -> None:
        chunk: list[bytes] = []
        for line in lines:
            data = (line + "\n").encode("utf-8")
            if self._should_roll(len(data)):
                self._file.write(b"".join(chunk))
                chunk = []
                self._roll()
            chunk.append(data)
            self._size += len(data)
        self._file.write(b"".join(chunk))
        self.written += len(lines)

    def _should_roll(self, size: int) -> bool:
        if self._next_roll is not None and self.clock() > self._next_roll:
            return True
        return (
            self.policy.kind == MAX_SIZE
            and self._size > 0
            and self._size + size > self.policy.max_bytes
        )

    def _roll(self) -> None:
        self._file.close()
        stem, ext = os.path.splitext(self.path)
        rolled = f"{stem}-{_time_suffix(self.policy, self._opened)}{ext}"
        n = 1
        while os.path.exists(rolled):  # two rolls within the suffix's resolution
            rolled = f"{stem}-{_time_suffix(self.policy, self._opened)}.{n}{ext}"
            n += 1
        os.rename(self.path, rolled)
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._opened = self.clock()
        self._next_roll = next_roll_time(self.policy, self._opened)
        self._size = 0
        self._remove_old(stem, ext)

    def _remove_old(self, stem: str, ext: str) -> None:
        if self.rotate_count < 0:
            return
        directory, base = os.path.split(stem)
        live = os.path.basename(self.path)
        rolled = sorted(
            name
            for name in os.listdir(directory)
            if name != live and name.startswith(base + "-") and name.endswith(ext)
        )
        for name in rolled[: max(0, len(rolled) - self.rotate_count)]:
            try:
                os.remove(os.path.join(directory, name))
            except OSError:
                pass


# -- the stack module ----------------------------------------------------------------------


class AccessLogFilter(Filter[Request, Response]):
    def __init__(self, file: AccessLogFile, clock: Callable[[], float] = time.time) -> None:
        self.file = file
        self.clock = clock

    def apply(self, request: Request, service: Service[Request, Response]) -> Deferred[Response]:
        return service(request).addCallback(self._logged, request)

    def _logged(self, response: Response, request: Request) -> Response:
        self.file.write(format_line(request, response, self.clock()))
        return response


def open_access_log(router: Any) -> AccessLogFile | None:
    """The access log file a router's config names (None when it names none)."""
    path = getattr(router, "http_access_log", None)
    if not path:
        return None
    return AccessLogFile(
        path,
        parse_roll_policy(router.http_access_log_roll_policy),
        append=router.http_access_log_append,
        rotate_count=router.http_access_log_rotate_count,
    )


def access_log_edit(file: AccessLogFile) -> StackEdit:
    """The client layer's outermost module, writing one line per response to ``file``."""

    def make(params: Params, next_: Service[Request, Response]) -> Service[Request, Response]:
        return AccessLogFilter(file).and_then(next_)

    return StackEdit(
        "client",
        Module(ROLE, make, "httpAccessLog: one line per upstream response"),
        before="stats",
    )
