"""Structured logging for containers: one JSON object per line on stdout.

Each line has ``time`` (RFC 3339), ``level``, ``ns`` (the emitting module), ``msg`` (the
formatted message) and the event's own fields (``router``, ``client``, ``n``, ...), so
``kubectl logs`` stays readable and log pipelines can filter on fields.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)

_SKIP = {"log_format", "log_level", "log_namespace", "log_time", "log_source", "log_logger", "log_io", "log_failure", "log_flattened", "log_trace", "log_system", "format", "message", "isError", "system", "time"}


class JsonLinesObserver:
    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event.get("log_time", time.time()))) + "Z",
            "level": getattr(event.get("log_level"), "name", "info"),
            "ns": event.get("log_namespace", "?"),
            "msg": formatEvent(event),
        }
        for key, value in event.items():
            if key not in _SKIP and not key.startswith("_"):
                record[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        failure = event.get("log_failure")
        if failure is not None:
            record["error"] = failure.getTraceback()
        try:
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()
        except Exception:
            pass


class TextObserver(JsonLinesObserver):
    def __call__(self, event: dict[str, Any]) -> None:
        level = getattr(event.get("log_level"), "name", "info")
        line = f"{time.strftime('%H:%M:%S')} {level:5} {formatEvent(event)}"
        failure = event.get("log_failure")
        if failure is not None:
            line += "\n" + failure.getTraceback()
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except Exception:
            pass


def start_logging(fmt: str = "json", level: str = "info", out: IO[str] | None = None) -> None:
    # Any: the observers meet ILogObserver by shape (zope interfaces are invisible to mypy).
    observer: Any = (TextObserver if fmt == "text" else JsonLinesObserver)(out or sys.stdout)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    predicates: list[Any] = [predicate]
    filtered: Any = FilteringLogObserver(observer, predicates)
    globalLogBeginner.beginLoggingTo([filtered], redirectStandardIO=False)
