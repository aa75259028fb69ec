"""JSON-lines logging to stdout for the example apps and the demo.

One object per line: ``time`` (epoch seconds), ``level``, ``system``, ``msg`` (the
formatted message) and every structured field of the event that JSON can carry.
"""

from __future__ import annotations

import json
import sys
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


def event_to_json(event: dict[str, Any]) -> str:
    level = event.get("log_level")
    record: dict[str, Any] = {
        "time": round(float(event.get("log_time", 0.0)), 6),
        "level": level.name if isinstance(level, type(LogLevel.info)) else "info",
        "system": event.get("log_namespace", ""),
        "msg": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in record or key == "format":
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            record[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = failure.getTraceback()
    return json.dumps(record, default=str)


@implementer(ILogObserver)
class JsonLinesObserver:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        self.stream.write(event_to_json(event) + "\n")
        self.stream.flush()


def start_logging(stream: IO[str] | None = None, level: LogLevel = LogLevel.info) -> None:
    sink: Any = JsonLinesObserver(stream or sys.stdout)
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=level)
    observer: Any = FilteringLogObserver(sink, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False, discardBuffer=True)
