"""Giving freed heap memory back to the system (glibc's ``malloc_trim``).

After thousands of idle names expire at once, the C heap (``malloc``: buffers, large
dicts and lists, OpenSSL, whatever Python's small-object allocator does not serve) keeps
its freed pages: glibc returns only a free top of the heap, on its own, and a heap that is
fragmented by a few live blocks keeps its RSS.  ``malloc_trim(0)`` gives back every free
page, wherever it is (``madvise``); the names bench measured ~20 MB of a 300 MB proxy
given back after 10,000 names expired, in ~2 ms.  Python's own arenas (``obmalloc``, 1 MiB
each, freed only when wholly empty) are not affected: their free space is reused by the
next names instead.

The other half is :func:`pin_mmap_threshold`: glibc serves a request of 128 KiB or more
with its own ``mmap`` (returned whole when freed) only until such a block is freed; then
it raises that threshold to the freed block's size, up to 32 MiB, and serves every later
request below it from the heap.  One scrape of a large exposition (MBs of text, freed at
once) is enough: from then on each scrape's MB-sized strings are carved out of the heap
between long-lived blocks, and the heap keeps the holes.  Pinning the threshold keeps
large, short-lived buffers out of the heap for the life of the process.

Elsewhere than glibc (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

_malloc_trim: Any = None
_loaded = False

# <malloc.h>: mallopt's parameter number, and glibc's own initial threshold (128 KiB),
# which the dynamic adjustment would otherwise raise
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


def _libc(name: str, argtypes: list[Any]) -> Any:
    """The C library's function ``name`` (None where it has none: not Linux, not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL(None), name)  # the process's own symbols: its C library's
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


def _load() -> Any:
    global _malloc_trim, _loaded
    _loaded = True
    _malloc_trim = _libc("malloc_trim", [ctypes.c_size_t])
    return _malloc_trim


def trim() -> bool:
    """Give the C heap's free pages back; True if some were (False where unsupported)."""
    fn = _malloc_trim if _loaded else _load()
    if fn is None:
        return False
    return bool(fn(0))


def pin_mmap_threshold(size: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Serve every ``malloc`` of ``size`` bytes or more with its own mapping, for good.

    Called once at start-up by long-running commands.  Setting the threshold explicitly
    turns glibc's dynamic adjustment off (and with it the dynamic trim threshold, which
    stays at 128 KiB so a free top of the heap is returned sooner).  ``bench/scale/names.py
    --names 10000 --probe``: the malloc arena before expiry was 17.6 MB mapped pinned,
    30.6 MB without (bench/README.md, "Fourth pass").  True if set.
    """
    mallopt = _libc("mallopt", [ctypes.c_int, ctypes.c_int])
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, size))
