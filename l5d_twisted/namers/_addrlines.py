"""Address lists as text: ``ip port [* weight]`` per line, ``#`` comments.

The io.l5d.fs file format.  A bad line is reported (with its line number) and skipped so
that one typo does not take a whole service down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from l5d_twisted.naming.addr import Address, make_address


@dataclass(frozen=True)
class LineError:
    line: int
    text: str
    problem: str

    def show(self, source: str) -> str:
        return f"{source}:{self.line}: {self.problem}: {self.text!r}"


def parse_address_lines(text: str) -> tuple[list[Address], list[LineError]]:
    addresses: list[Address] = []
    errors: list[LineError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            addresses.append(parse_address_line(line))
        except ValueError as e:
            errors.append(LineError(number, raw.strip(), str(e)))
    return addresses, errors


def parse_address_line(line: str) -> Address:
    """``host port`` or ``host port * weight`` (also ``host:port``) -> Address."""
    weight = 1.0
    main, star, weight_text = line.partition("*")
    if star:
        try:
            weight = float(weight_text.strip())
        except ValueError:
            raise ValueError(f"weight must be a number, not {weight_text.strip()!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError("weight must be a finite number >= 0")
    fields = main.split()
    if len(fields) == 1 and fields[0].count(":") == 1:
        fields = fields[0].split(":")
    if len(fields) != 2:
        raise ValueError("expected 'host port' or 'host:port', optionally followed by '* weight'")
    host, port_text = fields
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port must be a number between 1 and 65535, not {port_text!r}")
    return make_address(host, int(port_text), weight)
