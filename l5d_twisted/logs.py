"""Structured logging: one JSON object per line on stdout, for the mesh and the sample apps.

``l5d-twisted run`` (the mesh) and ``l5d-twisted example`` (hello, world) log through the
same :class:`JsonLinesObserver`, so one log pipeline reads both.  Each line has:

* ``time``: when the event was emitted, RFC 3339 in UTC with milliseconds
  (``2026-01-31T12:00:00.123Z``);
* ``level``: ``debug``, ``info``, ``warn``, ``error`` or ``critical``;
* ``ns``: the emitting module (the ``twisted.logger`` namespace);
* ``msg``: the formatted message;
* the event's own fields (``router``, ``client``, ``port``, ...): strings, numbers, booleans
  and nulls as they are, anything else as its ``repr``;
* ``error``: the traceback, when the event carries a failure.

``kubectl logs`` stays readable and log pipelines can filter on fields.  ``--log-format
text`` (the mesh) gives one plain line per event instead.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

FIELDS = ("time", "level", "ns", "msg")
"""The fields every line has (``error`` too, when there is a failure)."""

# twisted.logger's own keys and the legacy log's: the line shows them as the fields above.
_SKIP = frozenset({"format", "message", "isError", "system", "time", "why", "failure"})


def rfc3339(epoch: float) -> str:
    """``epoch`` seconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    seconds = int(epoch)
    millis = min(999, int(round((epoch - seconds) * 1000)))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """The JSON object of one ``twisted.logger`` event."""
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": rfc3339(float(event.get("log_time") or time.time())),
        "level": level.name if isinstance(level, type(LogLevel.info)) else "info",
        "ns": event.get("log_namespace") or "?",
        "msg": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith(("log_", "_")) or key in _SKIP or key in record:
            continue
        record[key] = (
            value if isinstance(value, str | int | float | bool) or value is None else repr(value)
        )
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getTraceback()
    return record


def event_text(event: dict[str, Any]) -> str:
    """One plain line (``HH:MM:SS level message``), the traceback after it if any."""
    level = event.get("log_level")
    name = level.name if isinstance(level, type(LogLevel.info)) else "info"
    when = time.strftime("%H:%M:%S", time.localtime(float(event.get("log_time") or time.time())))
    line = f"{when} {name:5} {formatEvent(event)}"
    failure = event.get("log_failure")
    if failure is not None:
        line += "\n" + failure.getTraceback()
    return line


@implementer(ILogObserver)
class JsonLinesObserver:
    """Writes each event as one JSON line (see the module doc) and flushes."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def format(self, event: dict[str, Any]) -> str:
        return json.dumps(event_record(event), default=str)

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            self.out.write(self.format(event) + "\n")
            self.out.flush()
        except Exception:
            pass  # a closed or full stdout must not break the emitter (nor log about itself)


class TextObserver(JsonLinesObserver):
    """Writes each event as one plain line."""

    def format(self, event: dict[str, Any]) -> str:
        return event_text(event)


def observer(fmt: str = "json", level: str = "info", out: IO[str] | None = None) -> Any:
    """The filtered observer ``start_logging`` installs (``fmt`` "json" or "text")."""
    # Any: the observers meet ILogObserver by declaration (zope interfaces are invisible to mypy).
    sink: Any = (TextObserver if fmt == "text" else JsonLinesObserver)(out or sys.stdout)
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    return FilteringLogObserver(sink, [predicate])


def start_logging(fmt: str = "json", level: str = "info", out: IO[str] | None = None) -> None:
    """Send every ``twisted.logger`` event at ``level`` or above to ``out`` (stdout)."""
    globalLogBeginner.beginLoggingTo([observer(fmt, level, out)], redirectStandardIO=False)
