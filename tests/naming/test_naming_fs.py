"""io.l5d.fs: files as service discovery, picked up live (poller driven by a Clock)."""

from __future__ import annotations

import os
from pathlib import Path as FsPath
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import Clock, deferLater

from l5d_twisted.cli import main
from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.context import PluginContext
from l5d_twisted.namers._addrlines import parse_address_lines
from l5d_twisted.namers.fs import FsNamer, FsNamerConfig
from l5d_twisted.naming.addr import AddrBound, AddrNeg
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.evaluate import evaluate
from l5d_twisted.naming.interpreter import Interpreter
from l5d_twisted.naming.nametree import NEG, Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, State
from l5d_twisted.registry import NAMERS

P = Path.read


def hosts(addr: Any) -> set[tuple[str, int, float]]:
    assert isinstance(addr, AddrBound), addr
    return {(a.host, a.port, a.weight) for a in addr.addresses}


def write(path: FsPath, text: str) -> None:
    # Replace atomically, as a deploy tool would; also changes the inode.
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_file_format_weights_comments_and_bad_lines() -> None:
    addresses, errors = parse_address_lines(
        "# hello's pods\n127.0.0.1 8080\n\n127.0.0.2 8081 * 2.5  # canary\n127.0.0.3:8082\n"
        "not-a-port x\n127.0.0.1 99999\n1.2.3.4 80 * lots\n"
    )
    assert {(a.host, a.port, a.weight) for a in addresses} == {
        ("127.0.0.1", 8080, 1.0),
        ("127.0.0.2", 8081, 2.5),
        ("127.0.0.3", 8082, 1.0),
    }
    assert [e.line for e in errors] == [6, 7, 8]
    assert "port must be a number" in errors[0].show("hello") and errors[0].show(
        "hello"
    ).startswith("hello:6: ")


def test_missing_file_is_neg_empty_file_is_an_empty_set(tmp_path: FsPath) -> None:
    (tmp_path / "empty").write_text("")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), Clock())
    assert namer.lookup(P("/missing")).sample() == Ok(NEG)
    state = namer.lookup(P("/empty")).sample()
    assert isinstance(state, Ok) and isinstance(state.value, Leaf)
    assert state.value.value.addr.sample() == AddrBound.of([])
    assert namer.lookup(P("/..")).sample() == Ok(NEG)


def test_changes_on_disk_are_picked_up_while_observed(tmp_path: FsPath) -> None:
    clock = Clock()
    svc = tmp_path / "hello"
    write(svc, "127.0.0.1 8080\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), clock, poll_interval_s=0.5)
    interp = Interpreter({P("/io.l5d.fs"): namer})
    dtab = Dtab.read("/svc => /#/io.l5d.fs")
    trees: list[State] = []
    bind = interp.bind(dtab, P("/svc/hello")).observe(trees.append)
    bound = trees[-1].value.value  # type: ignore[union-attr]
    assert bound.id == P("/#/io.l5d.fs/hello")
    addrs: list[Any] = []
    watch = bound.addr.observe(addrs.append)
    assert hosts(addrs[-1]) == {("127.0.0.1", 8080, 1.0)}

    write(svc, "127.0.0.1 8080\n127.0.0.1 8081 * 3\n")
    clock.advance(0.5)
    assert hosts(addrs[-1]) == {("127.0.0.1", 8080, 1.0), ("127.0.0.1", 8081, 3.0)}

    svc.unlink()
    clock.advance(0.5)
    assert isinstance(addrs[-1], AddrNeg)
    assert trees[-1] == Ok(NEG)

    write(svc, "127.0.0.9 9000\n")
    clock.advance(0.5)
    assert isinstance(trees[-1], Ok) and isinstance(trees[-1].value, Leaf)
    assert hosts(addrs[-1]) == {("127.0.0.9", 9000, 1.0)}
    assert evaluate(trees[-1].value) == trees[-1].value

    # Once nobody observes, the poller stops: nothing runs for unused names.
    bind.close()
    watch.close()
    assert not clock.getDelayedCalls()


def test_fallback_from_missing_file_to_another_service(tmp_path: FsPath) -> None:
    write(tmp_path / "world", "127.0.0.1 7778\n")
    clock = Clock()
    interp = Interpreter({P("/io.l5d.fs"): FsNamer(str(tmp_path), P("/io.l5d.fs"), clock)})
    dtab = Dtab.read("/svc => /#/io.l5d.fs; /svc/world => /#/io.l5d.fs/world-v2")
    seen: list[State] = []
    interp.bind(dtab, P("/svc/world")).observe(seen.append)
    assert seen[-1].value.value.id == P("/#/io.l5d.fs/world")  # type: ignore[union-attr]
    write(tmp_path / "world-v2", "127.0.0.1 7779\n")
    clock.advance(0.5)
    assert seen[-1].value.value.id == P("/#/io.l5d.fs/world-v2")  # type: ignore[union-attr]


def test_registered_factory_resolves_a_relative_root_dir_against_the_working_directory(
    tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As linkerd 1 does (java.nio Paths.get): not against the config file's folder."""
    work, conf = tmp_path / "work", tmp_path / "conf"
    for base, port in ((work, 1234), (conf, 4321)):
        (base / "disco").mkdir(parents=True)
        (base / "disco" / "hello").write_text(f"127.0.0.1 {port}\n")
    monkeypatch.chdir(work)
    plugin = NAMERS.get("io.l5d.fs")
    assert plugin.config_type is FsNamerConfig
    namer = plugin.factory(
        FsNamerConfig(root_dir="disco"),
        P("/io.l5d.fs"),
        PluginContext(reactor=Clock(), config_dir=str(conf)),
    )
    state = namer.state()
    assert state["names"]["hello"]["addr"] == {
        "type": "bound",
        "addrs": [{"ip": "127.0.0.1", "port": 1234}],
    }
    assert namer.root_dir == str(work / "disco")


def test_check_refuses_a_root_dir_that_is_not_a_directory_from_the_working_directory(
    tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """linkerd 1 refuses the config at load; the config's own folder does not count."""
    conf = tmp_path / "conf"
    (conf / "disco").mkdir(parents=True)
    config = conf / "l5d.yaml"
    config.write_text(
        "namers:\n- kind: io.l5d.fs\n  rootDir: disco\nrouters:\n- dtab: /svc => /#/io.l5d.fs;\n"
    )
    work = tmp_path / "work"
    work.mkdir()
    (work / "disco").write_text("a file, not a directory\n")
    monkeypatch.chdir(work)
    assert main(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{config}:2: namers[0]: rootDir: 'disco' is not a directory"
        f" (a relative rootDir is relative to the working directory {str(work)!r})",
        "1 problem found",
    ]
    (work / "disco").unlink()
    assert main(["check", str(config)]) == 2  # missing altogether: refused too
    assert "rootDir: 'disco' is not a directory" in capsys.readouterr().err
    monkeypatch.chdir(conf)
    assert main(["check", str(config)]) == 0, capsys.readouterr().err
    with pytest.raises(ConfigErrors):
        load_config("namers:\n- kind: io.l5d.fs\n  rootDir: no/such/dir\n", "c.yaml")


@pytest_twisted.ensureDeferred
async def test_live_updates_on_the_real_reactor_within_a_second(tmp_path: FsPath) -> None:
    from twisted.internet import reactor

    write(tmp_path / "hello", "127.0.0.1 8080\n")
    interp = Interpreter({P("/io.l5d.fs"): FsNamer(str(tmp_path), P("/io.l5d.fs"), reactor)})
    trees: list[State] = []
    handle = interp.bind(Dtab.read("/svc => /#/io.l5d.fs"), P("/svc/hello")).observe(trees.append)
    addrs: list[Any] = []
    watch = trees[-1].value.value.addr.observe(addrs.append)  # type: ignore[union-attr]
    try:
        write(tmp_path / "hello", "127.0.0.1 8080\n127.0.0.1 8081\n")
        start = reactor.seconds()
        while hosts(addrs[-1]) != {("127.0.0.1", 8080, 1.0), ("127.0.0.1", 8081, 1.0)}:
            assert reactor.seconds() - start < 1.0, "change not picked up within 1 s"
            await deferLater(reactor, 0.05)
    finally:
        handle.close()
        watch.close()


def test_malformed_lines_are_logged_with_file_and_line_and_skipped(tmp_path: FsPath) -> None:
    from twisted.logger import formatEvent, globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        write(tmp_path / "hello", "127.0.0.1 8080\n127.0.0.1 http\n")
        namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), Clock())
        state = namer.lookup(P("/hello")).sample()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert hosts(state.value.value.addr.sample()) == {("127.0.0.1", 8080, 1.0)}  # type: ignore[union-attr]
    messages = [formatEvent(e) for e in events]
    assert any(f"{tmp_path / 'hello'}:2: port must be a number" in m for m in messages), messages
    assert namer.state()["names"]["hello"]["errors"] == [
        "hello:2: port must be a number between 1 and 65535, not 'http': '127.0.0.1 http'"
    ]


def test_memory_namer_config_errors_point_at_the_entry() -> None:
    from l5d_twisted.config import ConfigErrors, load_config

    text = 'namers:\n- kind: io.l5d.memory\n  names:\n    hello: ["127.0.0.1"]\nrouters: [{protocol: http}]\n'
    try:
        load_config(text)
    except ConfigErrors as e:
        assert "names.hello: '127.0.0.1': expected 'host port' or 'host:port'" in str(e)
    else:
        raise AssertionError("a bad io.l5d.memory entry was accepted")
    bad_name = 'namers:\n- kind: io.l5d.memory\n  names:\n    "a b": ["127.0.0.1:80"]\nrouters: [{protocol: http}]\n'
    try:
        load_config(bad_name)
    except ConfigErrors as e:
        assert "names.a b: not a name: invalid character" in str(e)
    else:
        raise AssertionError("a bad io.l5d.memory name was accepted")


def test_a_name_looked_up_before_a_flood_of_unknown_names_still_gets_live_updates(
    tmp_path: FsPath,
) -> None:
    # A route cache may hold hello's var, unobserved for a moment, while a flood of unknown
    # Host headers makes the namer forget idle names; observed again, it must still be polled.
    from l5d_twisted.namers import fs

    clock = Clock()
    write(tmp_path / "hello", "127.0.0.1 8080\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), clock, poll_interval_s=0.5)
    held = namer.lookup(P("/hello"))
    for i in range(fs._MAX_IDLE_ENTRIES + 1):
        namer.lookup(P(f"/unknown-{i}"))
    seen: list[State] = []
    watch = held.observe(seen.append)
    addrs: list[Any] = []
    addr_watch = seen[-1].value.value.addr.observe(addrs.append)  # type: ignore[union-attr]
    write(tmp_path / "hello", "127.0.0.1 8081\n")
    clock.advance(0.5)
    assert hosts(addrs[-1]) == {("127.0.0.1", 8081, 1.0)}
    watch.close()
    addr_watch.close()
    assert not clock.getDelayedCalls()


def test_an_in_place_edit_in_the_same_timestamp_tick_is_still_picked_up(tmp_path: FsPath) -> None:
    # File timestamps are coarse (a few ms): an edit that keeps inode and size and lands in
    # the tick of the namer's last read leaves the stat signature unchanged.
    clock = Clock()
    svc = tmp_path / "hello"
    svc.write_text("127.0.0.1 8080\n")
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), clock, poll_interval_s=0.5)
    state = namer.lookup(P("/hello")).sample()
    addrs: list[Any] = []
    watch = state.value.value.addr.observe(addrs.append)  # type: ignore[union-attr]
    assert hosts(addrs[-1]) == {("127.0.0.1", 8080, 1.0)}
    before = os.stat(svc)
    with open(svc, "r+") as f:  # same inode, same size
        f.write("127.0.0.2 8080\n")
    os.utime(svc, ns=(before.st_atime_ns, before.st_mtime_ns))  # same tick
    clock.advance(0.5)
    assert hosts(addrs[-1]) == {("127.0.0.2", 8080, 1.0)}
    watch.close()


def test_observed_names_leave_the_idle_cache_to_the_most_recent_idle_names(
    tmp_path: FsPath,
) -> None:
    # With the cache full of names that routes observe, each new name used to scan the whole
    # cache for idle ones to drop (O(n) per Host header of a flood) and dropped every idle
    # name at once. Only idle names are counted, in their own LRU order (O(1) per name), and
    # observed ones always stay.
    from l5d_twisted.namers import fs

    clock = Clock()
    namer = FsNamer(str(tmp_path), P("/io.l5d.fs"), clock, poll_interval_s=0.5)
    watches = [
        namer.lookup(P(f"/held-{i}")).observe(lambda _s: None) for i in range(fs._MAX_IDLE_ENTRIES)
    ]
    for i in range(3 * fs._MAX_IDLE_ENTRIES):
        namer.lookup(P(f"/unknown-{i}"))
    names = namer._names
    assert all(f"held-{i}" in names for i in range(fs._MAX_IDLE_ENTRIES))
    idle = [n for n in names if n.startswith("unknown-")]
    assert len(idle) == fs._MAX_IDLE_ENTRIES
    assert idle[0] == f"unknown-{2 * fs._MAX_IDLE_ENTRIES}"  # the most recent ones stay
    # A name no longer observed becomes idle and may be dropped like any other.
    for watch in watches:
        watch.close()
    namer.lookup(P("/one-more"))
    assert len(namer._idle) == fs._MAX_IDLE_ENTRIES
    assert len(names) == fs._MAX_IDLE_ENTRIES
    assert not clock.getDelayedCalls()
