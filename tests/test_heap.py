"""The C heap's mmap threshold stays where ``heap.pin_mmap_threshold`` puts it.

Each check runs in a fresh interpreter, since the threshold is process-wide and glibc's
dynamic adjustment depends on what the process freed before.  ``mallinfo2().hblks`` counts
the live blocks glibc serves with their own mapping (glibc 2.33 and later).
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

# Free a 1 MiB mapped block (glibc then raises a dynamic threshold past 1 MiB), then ask
# for 512 KiB: print whether that block got its own mapping.
PROBE = """
import ctypes, sys
sys.path.insert(0, {repo!r})
from l5d_twisted import heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
pinned = heap.pin_mmap_threshold() if {pin!r} else None
libc.free(libc.malloc(1 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(512 << 10)
print(pinned, libc.mallinfo2().hblks - before)
libc.free(block)
"""


def glibc_with_mallinfo2() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    return hasattr(ctypes.CDLL(None), "mallinfo2")


needs_glibc = pytest.mark.skipif(not glibc_with_mallinfo2(), reason="glibc 2.33+ only")


def probe(pin: bool) -> tuple[str, int]:
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(repo=repo, pin=pin)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    return out[0], int(out[1])


@needs_glibc
def test_without_the_pin_a_freed_large_block_moves_the_next_ones_into_the_heap() -> None:
    # what the pin is for: glibc's own behaviour, which would keep scrape buffers in the heap
    assert probe(pin=False) == ("None", 0)


@needs_glibc
def test_pinned_a_large_block_keeps_its_own_mapping_after_a_larger_one_was_freed() -> None:
    assert probe(pin=True) == ("True", 1)


def test_pin_answers_false_where_it_cannot_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    from l5d_twisted import heap

    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap.pin_mmap_threshold() is False
