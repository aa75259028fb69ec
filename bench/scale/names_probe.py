"""What ``names.py --probe`` runs the proxy with: pauses and memory, asked for by signal.

    python3 bench/scale/names_probe.py run CONFIG ...   # as ``l5d-twisted run CONFIG ...``

Before the mesh starts it installs (measurement only, nothing in the mesh changes):

* ``gc.callbacks`` timing every collection: generation, wall and CPU ms, objects
  collected, the wall-clock time it started (with ``PROBE_GC_SIZES=1``, for generation 1
  and 2 collections also the young objects and the references they hold, and the largest);
* a wrapper around the epoll reactor's poller that records every reactor iteration busy
  for longer than ``PROBE_BUSY_MS`` (1 ms): from the return of one ``epoll_wait`` to the
  next call, wall and CPU ms, and the GC ms inside it;
* on SIGUSR1, the commands in ``$PROBE_DIR/cmd`` (one a line), run on the reactor thread,
  each answer appended to ``$PROBE_DIR/out.jsonl`` as one JSON line:
  ``stats`` (and reset) the GC and iteration records since the last ``stats``;
  ``mem`` RSS, heap/anon from ``/proc/self/smaps``, glibc ``mallinfo2`` and obmalloc's
  arenas (``sys._debugmallocstats``); ``trim`` ``malloc_trim(0)`` and RSS before/after;
  ``collect`` a full collection; ``types [N]`` the N most numerous tracked types;
  ``tm-start`` / ``tm-snap NAME`` / ``tm-diff A B`` tracemalloc (started late: it only
  sees what is allocated after ``tm-start``).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import signal
import sys
import tempfile
import time
from typing import Any

BUSY_MS = float(os.environ.get("PROBE_BUSY_MS", "1"))
SIZES = bool(os.environ.get("PROBE_GC_SIZES"))  # objects and references per gen-1/2 collection
DIR = os.environ.get("PROBE_DIR", ".")

gc_events: list[dict[str, Any]] = []
busy: list[dict[str, Any]] = []
counts = {"iterations": 0, "busy_total_ms": 0.0}
_gc_start: list[float] = [0.0, 0.0, 0.0]
_gc_in_iteration = [0.0]
_sizes: list[dict[str, Any]] = []


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        if SIZES and info["generation"] >= 1:
            # what the collection will traverse: objects, and the references they hold
            # (each one is visited, also those to older generations)
            young = gc.get_objects(0) + gc.get_objects(1)
            refs = [len(gc.get_referents(o)) for o in young]
            biggest = max(range(len(young)), key=refs.__getitem__, default=None)
            _sizes.append(
                {
                    "objects": len(young),
                    "refs": sum(refs),
                    "biggest": (
                        f"{type(young[biggest]).__qualname__}:{refs[biggest]}"
                        if biggest is not None
                        else ""
                    ),
                }
            )
            del young, refs
        _gc_start[0] = time.perf_counter()
        _gc_start[1] = time.thread_time()
        _gc_start[2] = time.time()
        return
    wall = (time.perf_counter() - _gc_start[0]) * 1000
    _gc_in_iteration[0] += wall
    sizes = _sizes.pop() if _sizes and info["generation"] >= 1 else {}
    gc_events.append(
        {
            **sizes,
            "t": round(_gc_start[2], 4),
            "gen": info["generation"],
            "ms": round(wall, 3),
            "cpu_ms": round((time.thread_time() - _gc_start[1]) * 1000, 3),
            "collected": info["collected"],
        }
    )


class _Poller:
    """select.epoll with the time between polls recorded."""

    def __init__(self, poller: Any) -> None:
        self._poller = poller
        self._left = time.perf_counter()
        self._left_cpu = time.thread_time()
        self._left_t = time.time()

    def poll(self, timeout: float = -1, maxevents: int = -1) -> Any:
        now = time.perf_counter()
        ms = (now - self._left) * 1000
        counts["iterations"] += 1
        counts["busy_total_ms"] += ms
        if ms >= BUSY_MS:
            busy.append(
                {
                    "t": round(self._left_t, 4),
                    "ms": round(ms, 3),
                    "cpu_ms": round((time.thread_time() - self._left_cpu) * 1000, 3),
                    "gc_ms": round(_gc_in_iteration[0], 3),
                }
            )
        events = self._poller.poll(timeout, maxevents)
        self._left = time.perf_counter()
        self._left_cpu = time.thread_time()
        self._left_t = time.time()
        _gc_in_iteration[0] = 0.0
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._poller, name)


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _smaps() -> dict[str, int]:
    """RSS (kB) of the [heap] mapping, of anonymous mappings, of everything else."""
    out = {"heap_kb": 0, "anon_kb": 0, "anon_maps": 0, "other_kb": 0}
    name = ""
    with open("/proc/self/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                name = parts[5] if len(parts) > 5 else ""
                if not name:
                    out["anon_maps"] += 1
            elif line.startswith("Rss:"):
                kb = int(line.split()[1])
                key = "heap_kb" if name == "[heap]" else "anon_kb" if not name else "other_kb"
                out[key] += kb
    return out


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _Mallinfo2
_libc.malloc_trim.argtypes = [ctypes.c_size_t]


def _obmalloc() -> dict[str, int]:
    # _debugmallocstats writes to the C stderr: point fd 2 at a temporary file meanwhile
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    out: dict[str, int] = {}
    for line in text.decode(errors="replace").splitlines():
        m = re.match(r"^# (arenas [a-z ]+?|bytes in [a-z ]+?)\s+=\s+([\d,]+)", line)
        if m:
            out[m.group(1).replace(" ", "_")] = int(m.group(2).replace(",", ""))
        m = re.match(r"^(\d+) unused pools \* \d+ bytes\s+=\s+([\d,]+)", line)
        if m:
            out["unused_pool_bytes"] = int(m.group(2).replace(",", ""))
        if line.startswith("Total"):  # obmalloc's (the first); the arena map's follows
            out.setdefault("obmalloc_total_bytes", int(line.split("=")[1].replace(",", "")))
    return out


def _mem() -> dict[str, Any]:
    mi = _libc.mallinfo2()
    return {
        "rss_kb": _rss_kb(),
        **_smaps(),
        "malloc_arena_kb": mi.arena // 1024,
        "malloc_mmap_kb": mi.hblkhd // 1024,
        "malloc_used_kb": mi.uordblks // 1024,
        "malloc_free_kb": mi.fordblks // 1024,
        **_obmalloc(),
        "gc_objects": len(gc.get_objects()),
        "gc_frozen": gc.get_freeze_count(),
    }


_snaps: dict[str, Any] = {}


def _run(command: str) -> dict[str, Any]:
    import tracemalloc

    word, _, arg = command.partition(" ")
    if word == "stats":
        out = {"gc": list(gc_events), "busy": list(busy), **counts}
        gc_events.clear()
        busy.clear()
        counts.update(iterations=0, busy_total_ms=0.0)
        return out
    if word == "mem":
        return _mem()
    if word == "types":  # the most numerous tracked types
        import collections

        kinds = collections.Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
        )
        return {"types": kinds.most_common(int(arg or 30)), "total": sum(kinds.values())}
    if word == "trim":
        before = _rss_kb()
        started = time.perf_counter()
        released = _libc.malloc_trim(0)
        return {
            "rss_before_kb": before,
            "rss_after_kb": _rss_kb(),
            "released": released,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
    if word == "collect":
        started = time.perf_counter()
        found = gc.collect()
        return {"found": found, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if word == "tm-start":
        tracemalloc.start(int(arg or 1))
        return {"started": True}
    if word == "tm-snap":
        _snaps[arg] = tracemalloc.take_snapshot()
        size, peak = tracemalloc.get_traced_memory()
        return {"snap": arg, "traced_kb": size // 1024, "peak_kb": peak // 1024}
    if word == "tm-diff":
        a, b = arg.split()
        stats = _snaps[b].compare_to(_snaps[a], "lineno")
        return {
            "diff": [[str(s.traceback), s.size_diff // 1024, s.count_diff] for s in stats[:40]],
            "total_kb": sum(s.size_diff for s in stats) // 1024,
        }
    if word == "tm-top":
        stats = _snaps[arg].statistics("lineno")
        return {"top": [[str(s.traceback), s.size // 1024, s.count] for s in stats[:40]]}
    return {"unknown": command}


def _on_signal(*_: Any) -> None:
    from twisted.internet import reactor

    reactor.callFromThread(_commands)  # type: ignore[attr-defined]


def _commands() -> None:
    try:
        with open(os.path.join(DIR, "cmd")) as f:
            lines = [x.strip() for x in f if x.strip()]
    except OSError:
        lines = []
    with open(os.path.join(DIR, "out.jsonl"), "a") as out:
        for line in lines:
            try:
                answer = _run(line)
            except Exception as e:  # a probe, not the mesh: say what failed
                answer = {"error": repr(e)}
            out.write(json.dumps({"cmd": line, **answer}) + "\n")
    os.unlink(os.path.join(DIR, "cmd"))


def main() -> int:
    gc.callbacks.append(_gc_callback)
    # the poller is wrapped once the mesh has installed its reactor (which must come after
    # the mesh's own import choices: no TLS or HTTP/2 unless used)
    try:
        from l5d_twisted import eventloop
    except ImportError:  # an older tree: no wrapper (no busy records)
        pass
    else:
        original = eventloop.install

        def install() -> bool:
            installed = original()
            from twisted.internet import reactor

            r: Any = reactor
            if hasattr(r, "_poller"):
                r._poller = _Poller(r._poller)
            return installed

        eventloop.install = install  # type: ignore[assignment]
    signal.signal(signal.SIGUSR1, _on_signal)
    from l5d_twisted.cli import main as l5d_main

    return int(l5d_main(sys.argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
