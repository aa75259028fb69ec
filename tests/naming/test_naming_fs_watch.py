"""io.l5d.fs without per-name polling (issue 17): a directory watch tells the namer which
file changed; no work per tick however many names are watched; ``maxIdleNames``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater

from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.namers import fs
from l5d_twisted.namers._dirwatch import inotify_watcher
from l5d_twisted.namers.fs import FsNamer, FsNamerConfig, make_fs_namer
from l5d_twisted.naming.addr import AddrBound
from l5d_twisted.naming.path import Path


def P(text: str) -> Path:
    return Path.read(text)


def ports(addr: Any) -> set[int]:
    assert isinstance(addr, AddrBound), addr
    return {a.port for a in addr.addresses}


class FakeWatch:
    def __init__(self, on_change: Callable[[str | None], None]) -> None:
        self.on_change = on_change
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


class FakeWatcher:
    def __init__(self, works: bool = True) -> None:
        self.works = works
        self.watches: list[FakeWatch] = []

    def __call__(self, root_dir: str, on_change: Callable[[str | None], None]) -> FakeWatch | None:
        if not self.works:
            return None
        self.watches.append(FakeWatch(on_change))
        return self.watches[-1]


def watched_addr(namer: FsNamer, name: str) -> tuple[list[Any], Any]:
    state = namer.lookup(P(f"/{name}")).sample()
    seen: list[Any] = []
    watch = state.value.value.addr.observe(seen.append)  # type: ignore[union-attr]
    return seen, watch


def test_a_watched_directory_costs_nothing_per_tick(tmp_path: FsPath, monkeypatch: Any) -> None:
    clock = Clock()
    watcher = FakeWatcher()
    for i in range(50):
        (tmp_path / f"s{i}").write_text(f"127.0.0.1 {8000 + i}\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), clock, 0.5, dir_watcher=watcher)
    observed = [watched_addr(namer, f"s{i}") for i in range(50)]
    assert len(watcher.watches) == 1, "one watch for the directory, not one per name"
    assert not clock.getDelayedCalls(), "no poller"
    stats: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(fs.os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    (tmp_path / "s7").write_text("127.0.0.1 9007\n")
    clock.advance(60)
    assert stats == [] and ports(observed[7][0][-1]) == {8007}, "nothing looked at without an event"
    watcher.watches[0].on_change("s7")
    assert stats == [str(tmp_path / "s7")], "an event re-checks the file it names, only"
    assert ports(observed[7][0][-1]) == {9007}
    watcher.watches[0].on_change("not-watched")
    assert len(stats) == 1
    for _, watch in observed:
        watch.close()
    assert watcher.watches[0].stopped, "nobody watches any name: the directory watch stops"


@pytest.mark.parametrize("event", [None, "..data", "..2026_12_02"])
def test_an_event_naming_no_single_file_rechecks_every_watched_name(
    tmp_path: FsPath, event: str | None
) -> None:
    # A Kubernetes ConfigMap volume swaps its ..data symlink: the names' files change with
    # no event of their own.
    watcher = FakeWatcher()
    (tmp_path / "a").write_text("127.0.0.1 1\n")
    (tmp_path / "b").write_text("127.0.0.1 2\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), Clock(), 0.5, dir_watcher=watcher)
    a, _ = watched_addr(namer, "a")
    b, _ = watched_addr(namer, "b")
    (tmp_path / "a").write_text("127.0.0.1 11\n")
    (tmp_path / "b").write_text("127.0.0.1 22\n")
    watcher.watches[0].on_change(event)
    assert ports(a[-1]) == {11} and ports(b[-1]) == {22}


def test_without_a_directory_watch_the_namer_polls(tmp_path: FsPath) -> None:
    clock = Clock()
    (tmp_path / "a").write_text("127.0.0.1 1\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), clock, 0.5, dir_watcher=FakeWatcher(False))
    a, _ = watched_addr(namer, "a")
    (tmp_path / "a").write_text("127.0.0.1 12\n")
    clock.advance(0.5)
    assert ports(a[-1]) == {12}


def test_a_lost_directory_watch_falls_back_to_polling(tmp_path: FsPath) -> None:
    clock = Clock()
    watcher = FakeWatcher()
    (tmp_path / "a").write_text("127.0.0.1 1\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), clock, 0.5, dir_watcher=watcher)
    a, _ = watched_addr(namer, "a")
    assert not clock.getDelayedCalls()
    (tmp_path / "a").write_text("127.0.0.1 13\n")
    namer.watch_lost()
    assert ports(a[-1]) == {13}, "re-checked at once"
    (tmp_path / "a").write_text("127.0.0.1 14\n")
    clock.advance(0.5)
    assert ports(a[-1]) == {14}, "then polled"


def test_max_idle_names_is_configurable(tmp_path: FsPath) -> None:
    config = FsNamerConfig(root_dir=str(tmp_path), max_idle_names=3)
    namer = make_fs_namer(config, P("/io.l5d.fs"), PluginContext(reactor=Clock()))
    for i in range(10):
        namer.lookup(P(f"/n{i}"))
    assert list(namer._idle) == ["n7", "n8", "n9"]
    assert FsNamerConfig(root_dir=str(tmp_path)).max_idle_names == fs._MAX_IDLE_ENTRIES


def test_max_idle_names_below_zero_is_a_config_error(tmp_path: FsPath) -> None:
    text = f"""
namers:
- kind: io.l5d.fs
  rootDir: {tmp_path}
  maxIdleNames: -1
routers:
- protocol: http
"""
    with pytest.raises(ConfigErrors) as raised:
        load_config(text)
    assert "maxIdleNames: expected an integer >= 0" in str(raised.value)


@pytest_twisted.ensureDeferred
async def test_inotify_tells_the_namer_of_a_rewritten_file(tmp_path: FsPath) -> None:
    watcher = inotify_watcher(reactor, lambda: None)
    probe = watcher(str(tmp_path), lambda _name: None)
    if probe is None:
        pytest.skip("no inotify here")
    probe.stop()
    (tmp_path / "hello").write_text("127.0.0.1 8080\n")
    namer = make_fs_namer(
        FsNamerConfig(root_dir=str(tmp_path), poll_interval_ms=3_600_000),  # never polls
        P("/io.l5d.fs"),
        PluginContext(reactor=reactor),
    )
    seen, watch = watched_addr(namer, "hello")
    try:
        tmp = tmp_path / ".hello.tmp"
        tmp.write_text("127.0.0.1 8081\n")
        os.replace(tmp, tmp_path / "hello")  # an atomic rewrite
        for _ in range(200):  # up to 10 s
            if ports(seen[-1]) == {8081}:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert ports(seen[-1]) == {8081}
        (tmp_path / "hello").write_text("127.0.0.1 8082\n")  # in place
        for _ in range(200):
            if ports(seen[-1]) == {8082}:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert ports(seen[-1]) == {8082}
    finally:
        watch.close()
    assert namer._dir_watch is None, "released with the last watcher"


def test_names_the_idle_cache_forgets_are_freed_without_a_full_gc(tmp_path: FsPath) -> None:
    import gc
    import weakref

    for i in range(20):
        (tmp_path / f"s{i}").write_text("127.0.0.1 1\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), Clock(), 0.5, max_idle=3)
    held = namer.lookup(P("/s0"))  # a route cache holds this one's var
    gc.collect()
    gc.disable()
    try:
        refs = []
        for i in range(20):
            namer.lookup(P(f"/s{i}"))
            refs.append(weakref.ref(namer._names[f"s{i}"]))
        alive = [i for i, ref in enumerate(refs) if ref() is not None]
        # s0's var is held, but it does not hold its forgotten entry: no cycle is left to
        # wait for a full collection (with one, the entry of a var dropped later was garbage)
        assert alive == [17, 18, 19], "forgotten entries freed by reference counting"
        var_ref = weakref.ref(held)
        still_held = held
        del held
        assert var_ref() is still_held
    finally:
        gc.enable()
    held = still_held
    seen: list[Any] = []
    watch = held.observe(seen.append)  # the held one still works: watched and refreshed
    assert namer._names["s0"].watched, "it follows the name's current entry"
    addr = seen[-1].value.value.addr
    addrs: list[Any] = []
    addr_watch = addr.observe(addrs.append)
    (tmp_path / "s0").write_text("127.0.0.1 2\n")
    namer.poll()
    assert ports(addrs[-1]) == {2}
    assert ports(seen[-1].value.value.addr.sample()) == {2}
    addr_watch.close()
    watch.close()
    assert not namer._names["s0"].watched, "the mirror ends with the last observer"
    assert not namer._watched


def test_a_var_held_past_its_entry_samples_the_file_and_leaves_no_garbage(
    tmp_path: FsPath,
) -> None:
    import gc

    from l5d_twisted.namers import fs

    (tmp_path / "hello").write_text("127.0.0.1 1\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), Clock(), 0.5, max_idle=1)
    held = namer.lookup(P("/hello"))
    namer.lookup(P("/other"))  # hello's entry is forgotten while its var is held
    assert "hello" not in namer._names
    (tmp_path / "hello").write_text("127.0.0.1 2\n")
    state = held.sample()  # unobserved: read through the name's current entry
    assert ports(state.value.value.addr.sample()) == {2}  # type: ignore[union-attr]
    del state
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        del held
        namer.lookup(P("/third"))  # forgets hello's current entry in turn
        gc.collect()
        left = [o for o in gc.garbage if type(o).__module__ == fs.__name__]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == [], "no name's objects wait for a full collection"
