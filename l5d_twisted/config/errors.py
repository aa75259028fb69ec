"""Config errors: every problem found, each with its key path and YAML line.

Loading never stops at the first problem; the decoder collects :class:`ConfigError` values
and raises one :class:`ConfigErrors` listing all of them, so a user fixes a file in one go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigError:
    """One problem: ``path`` like ``routers[0].servers[1].port`` ("" for the document)."""

    path: str
    line: int | None
    message: str
    source: str = "<config>"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigErrors(Exception):
    """All the problems of one config; ``str()`` lists them one per line, in file order."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        ordered = sorted(
            _dedupe(errors), key=lambda e: (e.line if e.line is not None else 1 << 30, e.path)
        )
        super().__init__("\n".join(str(e) for e in ordered))
        self.errors: list[ConfigError] = ordered

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


def _dedupe(errors: Iterable[ConfigError]) -> list[ConfigError]:
    seen: set[ConfigError] = set()
    out = []
    for error in errors:
        if error not in seen:
            seen.add(error)
            out.append(error)
    return out
