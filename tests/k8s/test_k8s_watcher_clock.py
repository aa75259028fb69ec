"""The watcher's loop driven by task.Clock and a scripted API: backoff, resync, stop."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from l5d_twisted.k8s.api import ApiError
from l5d_twisted.k8s.watcher import NamespaceWatcher, WatchSettings


class ScriptedHandle:
    def __init__(self) -> None:
        self.done: Deferred[None] = Deferred()

    def abort(self, reason: Exception | None = None) -> None:
        if not self.done.called:
            self.done.errback(reason or ConnectionAbortedError())


class ScriptedApi:
    """Lists answer from ``list_results`` (an exception fails the call); watches hang."""

    def __init__(self) -> None:
        self.list_results: list[Any] = []
        self.calls: list[tuple[float, str]] = []
        self.watches: list[ScriptedHandle] = []
        self.clock: Clock | None = None

    def get_json(self, path: str, params: Any = None) -> Deferred[Any]:
        assert self.clock is not None
        self.calls.append((self.clock.seconds(), "list"))
        result = (
            self.list_results.pop(0)
            if self.list_results
            else {"metadata": {"resourceVersion": "1"}, "items": []}
        )
        return fail(result) if isinstance(result, Exception) else succeed(result)

    def watch(self, path: str, params: Any, on_line: Any, idle_timeout_s: float) -> ScriptedHandle:
        assert self.clock is not None
        self.calls.append((self.clock.seconds(), "watch"))
        handle = ScriptedHandle()
        self.watches.append(handle)
        return handle


def make(settings: WatchSettings) -> tuple[NamespaceWatcher, ScriptedApi, Clock]:
    clock = Clock()
    api = ScriptedApi()
    api.clock = clock
    watcher = NamespaceWatcher(api, "default", clock, rng=random.Random(7), settings=settings)  # type: ignore[arg-type]
    return watcher, api, clock


def test_failed_lists_back_off_exponentially_then_reset():
    watcher, api, clock = make(WatchSettings(resync_s=0, backoff_base_s=1.0, backoff_max_s=8.0))
    api.list_results = [ApiError(500, "boom")] * 5
    watcher.start()
    for _ in range(200):
        clock.advance(0.25)
    lists = [t for t, kind in api.calls if kind == "list"]
    assert len(lists) == 6  # 5 failures, then success
    gaps = [b - a for a, b in zip(lists, lists[1:])]
    assert all(1.0 <= g <= 8.25 for g in gaps), gaps
    assert max(gaps[2:]) > 2.0  # the ceiling grew
    assert watcher.synced and watcher.connection == "watching" and watcher.last_error is None
    # a dropped watch after success reconnects after a short (reset) delay
    api.watches[-1].abort(ConnectionResetError("dropped"))
    before = len(api.calls)
    clock.advance(1.0)
    assert api.calls[before:] == [(api.calls[before][0], "watch")]
    assert [kind for _, kind in api.calls].count("list") == 6  # resumed, not re-listed


def test_resync_relists_on_schedule_and_stop_ends_everything():
    watcher, api, clock = make(WatchSettings(resync_s=300.0))
    watcher.start()
    assert [k for _, k in api.calls] == ["list", "watch"]
    clock.advance(299)
    assert [k for _, k in api.calls] == ["list", "watch"]
    clock.advance(1)
    assert [k for _, k in api.calls] == ["list", "watch", "list", "watch"]
    watcher.stop()
    assert watcher.connection == "stopped"
    clock.advance(1000)
    assert len(api.calls) == 4
    assert not clock.getDelayedCalls()


def test_gone_relists_at_once_without_backoff():
    watcher, api, clock = make(WatchSettings(resync_s=0))
    watcher.start()
    api.watches[-1].abort(ApiError(410, "too old resource version"))
    assert [k for _, k in api.calls] == ["list", "watch", "list", "watch"]
    assert clock.seconds() == 0


def _event(kind: str, name: str, service: str, ip: str, rv: str) -> bytes:
    import json

    obj = {
        "metadata": {
            "name": name,
            "resourceVersion": rv,
            "labels": {"kubernetes.io/service-name": service},
        },
        "ports": [{"name": "http", "port": 80}],
        "endpoints": [{"addresses": [ip]}],
    }
    return json.dumps({"type": kind, "object": obj}).encode()


def test_events_update_the_per_service_index_and_notify_both_services():
    watcher, api, clock = make(WatchSettings(resync_s=0))
    told: list[str] = []
    watcher.listen("a", lambda: told.append("a"))
    watcher.listen("b", lambda: told.append("b"))
    watcher.start()
    assert sorted(told) == ["a", "b"]  # first sync
    watcher._on_line(_event("ADDED", "s1", "a", "10.0.0.1", "5"))
    assert [s.name for s in watcher.shards_for("a")] == ["s1"] and told[-1] == "a"
    told.clear()
    watcher._on_line(_event("MODIFIED", "s1", "b", "10.0.0.1", "6"))  # re-labelled to b
    assert watcher.shards_for("a") == [] and [s.name for s in watcher.shards_for("b")] == ["s1"]
    assert sorted(told) == ["a", "b"]
    told.clear()
    watcher._on_line(_event("MODIFIED", "s1", "b", "10.0.0.1", "7"))  # no change: nobody told
    assert told == [] and watcher.resource_version == "7"
    watcher._on_line(_event("DELETED", "s1", "b", "10.0.0.1", "8"))
    assert watcher.shards_for("b") == [] and told == ["b"]
    watcher.stop()


def test_repeated_gone_backs_off_instead_of_spinning():
    watcher, api, clock = make(WatchSettings(resync_s=0, backoff_base_s=1.0, backoff_max_s=4.0))
    watcher.start()
    for _ in range(3):
        api.watches[-1].abort(ApiError(410, "too old resource version"))
    kinds = [k for _, k in api.calls]
    assert kinds == ["list", "watch", "list", "watch"]  # the second 410 waits
    clock.advance(1.0)
    assert [k for _, k in api.calls][4:] == ["list", "watch"]
    watcher.stop()


def test_stop_during_a_list_starts_no_watch():
    clock = Clock()
    pending: Deferred[Any] = Deferred()

    class SlowApi(ScriptedApi):
        def get_json(self, path: str, params: Any = None) -> Deferred[Any]:
            self.calls.append((0.0, "list"))
            return pending

    api = SlowApi()
    api.clock = clock
    watcher = NamespaceWatcher(api, "default", clock, settings=WatchSettings(resync_s=0))  # type: ignore[arg-type]
    watcher.start()
    watcher.stop()
    pending.callback({"metadata": {"resourceVersion": "1"}, "items": []})
    assert [k for _, k in api.calls] == ["list"]


def test_stop_cancels_a_list_in_flight():
    """A list the API has not answered must not keep its connection (and timer) after stop."""
    clock = Clock()
    pending: Deferred[Any] = Deferred()

    class SlowApi(ScriptedApi):
        def get_json(self, path: str, params: Any = None) -> Deferred[Any]:
            self.calls.append((0.0, "list"))
            return pending

    api = SlowApi()
    api.clock = clock
    watcher = NamespaceWatcher(api, "default", clock, settings=WatchSettings(resync_s=0))  # type: ignore[arg-type]
    watcher.start()
    watcher.stop()
    assert pending.called  # cancelled
    pending.addErrback(lambda _f: None)
    clock.advance(100)
    assert [k for _, k in api.calls] == ["list"] and not clock.getDelayedCalls()


def test_deleted_event_with_malformed_metadata_is_skipped():
    """A DELETED whose metadata is not an object is bad input: the stream goes on."""
    watcher, api, clock = make(WatchSettings(resync_s=0))
    watcher.start()
    watcher._on_line(_event("ADDED", "s1", "a", "10.0.0.1", "5"))
    watcher._on_line(b'{"type": "DELETED", "object": {"metadata": "s1"}}')
    watcher._on_line(b'{"type": "DELETED", "object": {"metadata": ["s1"]}}')
    assert [s.name for s in watcher.shards_for("a")] == ["s1"]
    assert len(api.watches) == 1 and not api.watches[0].done.called
    watcher.stop()
