"""The traffic-shifting walkthrough (issue 14 item 6), with real processes on loopback:
world-v1 and world-v2, a real ``l5d-twisted namerd`` (run twice: io.l5d.inMemory storage,
and io.l5d.k8s storage with DTab objects in the emulated Kubernetes API of
tests/namerd/k8s_dtab_fake_api.py), a real mesh
(``l5d-twisted run``, one router, ``dstPrefix: /host``, ``interpreter: io.l5d.namerd.http``),
and the operator's ``l5d-twisted dtab`` CLI.  A load generator (three clients on keep-alive
connections through the mesh) runs for the whole module and records every answer; each step
asserts that none of the answers in its window failed.

The walk:

1. ``dtab create default`` with ``/srv => /#/io.l5d.fs; /host/world => /srv/world-v1``.
2. get, edit, update: ``/host/world => 9 * /srv/world-v1 & 1 * /srv/world-v2``.  v2's share
   of N = 2,000 requests is a binomial draw with p = 0.1: sd = sqrt(0.1 * 0.9 / 2000) = 0.67
   points; the tolerance 10 % +- 2.5 points is 3.7 sd (a correct mesh fails it about
   twice in 10,000 runs).  Then ``/host/world => /srv/world-v2``: every answer after the
   first v2 answer is v2 (500 checked, plus the load generator's).
3. Propagation: 6 alternating updates, each timed from the CLI's ``dtab update`` returning
   to the first answer routed to the new target (polled back to back); p50 and max are
   printed, only a hang (10 s) fails.  namerd sends the watch line inside the write, so
   the mesh has usually moved before the CLI process has exited and this is about one
   request's round trip; bench/namerd/propagation.py also times from the update's start.
4. namerd killed with SIGKILL mid-walk: for 5 s every answer still comes from the last
   bound target.  namerd is restarted on the same port.  inMemory storage keeps dtabs only
   in the process, so a restarted namerd knows only its config: a namerd restarted *empty*
   would bind ``/host/world`` as ``neg`` (as linkerd 1's namerd does), and a mesh that
   reconnects before the operator re-creates the dtab would fail requests in between.
   The operator therefore restarts it with the last dtab written into its config's
   ``storage.namespaces`` (the inMemory way to keep a dtab over a restart), and the mesh
   follows the next ``dtab update`` made with the CLI.  With the k8s storage the dtabs are
   in the API and survive: namerd is restarted with the same config, nothing restored.
   (A k8s namerd restarted while the API is *down* answers 503 until it has listed the
   DTab objects, and the mesh keeps its bindings: test_namerd_restart_unsynced.py.)
5. The race: two ``dtab update`` processes started together from the same version; exactly
   one exits 0, the other exits 1 with "the dtab changed since you read it" (namerd counts
   exactly one more 412 in ``namerd/dtab/conflicts``), and the mesh routes to the winner's
   target.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from l5d_testing import free_port
from shifting_world import BASE, LoadGenerator, ShiftingWorld, version_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "namerd"))
from k8s_dtab_fake_api import FakeDtabApi  # noqa: E402

pytestmark = pytest.mark.slow

N = 2000
TOLERANCE = 0.025  # 3.7 binomial standard deviations of N draws at p = 0.1
OUTAGE_SECONDS = 5.0
HANG = 10.0  # a propagation slower than this is a hang, not a measurement


class Walk:
    def __init__(self, world: ShiftingWorld, load: LoadGenerator) -> None:
        self.world = world
        self.load = load

    def assert_no_failures(self, since: float, what: str) -> int:
        """No failed answer from the load generator since ``since``; how many answered."""
        until = time.monotonic()
        failed = self.load.failures(since, until)
        assert not failed, f"{len(failed)} failed during {what}: {failed[:5]}"
        answered = [o for o in self.load.snapshot() if since <= o.at <= until]
        assert answered, f"the load generator answered nothing during {what}"
        return len(answered)


@pytest.fixture(scope="module", params=["inMemory", "k8s"])
def walk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Walk]:
    storage: str = request.param
    api = FakeDtabApi(free_port()) if storage == "k8s" else None
    world = ShiftingWorld(
        tmp_path_factory.mktemp(f"shifting-{storage}"), storage, api.port if api else 0
    )
    load = LoadGenerator(0)
    try:
        if api is not None:
            api.start()
        world.start()
        created = world.cli("create", "default", "-", stdin=BASE + "/host/world => /srv/world-v1\n")
        assert created.returncode == 0, created.stderr
        world.until_answer("v1", timeout=30.0)
        load = LoadGenerator(world.ports["mesh"])
        load.start()
        yield Walk(world, load)
    finally:
        load.stop()
        world.stop()
        if api is not None:
            api.stop()


def test_ten_percent_then_all_of_the_traffic_moves_to_v2(walk: Walk) -> None:
    world = walk.world
    since = time.monotonic()
    world.get_edit_update("/host/world => 9 * /srv/world-v1 & 1 * /srv/world-v2")
    got = world.cli("get", "default")
    assert "/host/world => 9.0 * /srv/world-v1 & /srv/world-v2;" in got.stdout, got.stdout
    world.until_answer("v2", timeout=HANG)  # the split is live once v2 answers
    answers = [world.world() for _ in range(N)]
    assert [s for s, _ in answers if s != 200] == []
    versions = [version_of(body) for _, body in answers]
    assert set(versions) == {"v1", "v2"}
    share = versions.count("v2") / N
    print(f"{world.storage}: v2's share of {N} requests with 9 * v1 & 1 * v2: {share:.2%}")
    assert abs(share - 0.10) <= TOLERANCE, share

    world.get_edit_update("/host/world => /srv/world-v2")
    world.until_answer("v2", timeout=HANG)
    answers = [world.world() for _ in range(500)]
    assert {(s, version_of(b)) for s, b in answers} == {(200, "v2")}
    # the load generator's answers agree: after the propagation, v2 only
    settled = time.monotonic()
    deadline = time.monotonic() + HANG
    while not [o for o in walk.load.snapshot() if o.at > settled] and time.monotonic() < deadline:
        world.world()
    answers_after = [o for o in walk.load.snapshot() if o.at > settled]
    assert answers_after and {o.version for o in answers_after} == {"v2"}
    answered = walk.assert_no_failures(since, "the 10 % and 100 % shifts")
    print(f"the load generator had {answered} answers during the shifts, none failed")


def test_propagation_from_dtab_update_to_routed_traffic(walk: Walk) -> None:
    world = walk.world
    since = time.monotonic()
    world.get_edit_update("/host/world => /srv/world-v1")
    world.until_answer("v1", timeout=HANG)
    times = []
    for i in range(6):
        target = "v2" if i % 2 == 0 else "v1"
        world.get_edit_update(f"/host/world => /srv/world-{target}")
        times.append(world.until_answer(target, timeout=HANG))
    print(
        f"{world.storage}: propagation from `dtab update` returning to the first routed answer over "
        f"{len(times)} updates: p50 {statistics.median(times) * 1000:.0f} ms, "
        f"max {max(times) * 1000:.0f} ms ({', '.join(f'{t * 1000:.0f}' for t in times)} ms)"
    )
    answered = walk.assert_no_failures(since, "the alternating updates")
    print(f"the load generator had {answered} answers during the updates, none failed")


def test_namerd_killed_and_restarted_mid_walk(walk: Walk) -> None:
    world = walk.world
    rule = "/host/world => /srv/world-v2"
    world.get_edit_update(rule)
    world.until_answer("v2", timeout=HANG)

    before = world.metrics()
    world.kill_namerd()
    killed = time.monotonic()
    answered = 0
    while time.monotonic() < killed + OUTAGE_SECONDS:
        status, body = world.world()
        assert (status, version_of(body)) == (200, "v2"), (status, body)
        answered += 1
    during = walk.assert_no_failures(killed, "namerd's outage")
    assert {o.version for o in walk.load.snapshot() if o.at >= killed} == {"v2"}
    print(
        f"{world.storage}: namerd killed: {answered} + {during} (load generator) answers over "
        f"{OUTAGE_SECONDS:.0f} s, all from v2 (the last known binding), none failed"
    )

    outage = world.metrics()
    assert outage["failures"] > before["failures"]  # the mesh noticed, and backs off
    if world.storage == "k8s":
        world.start_namerd()  # the dtabs are in the Kubernetes API: nothing to restore
    else:
        # the operator restarts namerd with the last dtab in its config (inMemory storage)
        world.start_namerd(seed=BASE + rule)
    restarted = time.monotonic()
    got = world.cli("get", "default")
    assert got.returncode == 0 and rule in got.stdout, (got.returncode, got.stdout, got.stderr)
    world.get_edit_update("/host/world => /srv/world-v1")
    took = world.until_answer("v1", timeout=30.0)  # the mesh reconnects within its backoff
    print(f"namerd back: the mesh followed the next update {took:.2f} s after the CLI returned")
    assert world.metrics()["connects"] > outage["connects"]  # to the restarted namerd
    walk.assert_no_failures(restarted, "namerd's restart")
    walk.assert_no_failures(killed, "the whole outage and restart")


def test_two_concurrent_updates_from_the_same_version_one_wins(walk: Walk) -> None:
    world = walk.world
    since = time.monotonic()
    got = world.cli("get", "default")
    assert got.returncode == 0, got.stderr
    version = got.stdout.splitlines()[0].removeprefix("# version ")
    alternatives = {"v1": "/srv/world-v1 | /srv/world-v2", "v2": "/srv/world-v2 | /srv/world-v1"}
    files = {}
    for v in ("v1", "v2"):
        files[v] = world.tmp / f"race-{v}.dtab"
        files[v].write_text(f"# version {version}\n{BASE}/host/world => {alternatives[v]}\n")
    conflicts = world.namerd_metrics().get("namerd/dtab/conflicts", 0)
    procs = {
        v: subprocess.Popen(
            world.cli_command("update", "default", str(path)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=world.cli_env(),
        )
        for v, path in files.items()
    }
    results = {v: (p.wait(60), p.stderr.read() if p.stderr else "") for v, p in procs.items()}
    for p in procs.values():
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert sorted(rc for rc, _ in results.values()) == [0, 1], results
    winner = next(v for v, (rc, _) in results.items() if rc == 0)
    loser = next(v for v, (rc, _) in results.items() if rc == 1)
    assert "the dtab changed since you read it" in results[loser][1], results[loser]
    assert f"no longer at version {version}" in results[loser][1], results[loser]
    # the loser's answer was namerd's 412 (one conflict), not a client-side refusal
    assert world.namerd_metrics()["namerd/dtab/conflicts"] == conflicts + 1
    now = world.cli("get", "default")
    assert f"/host/world => {alternatives[winner]};" in now.stdout, now.stdout
    world.until_answer(winner, timeout=HANG)
    answers = [world.world() for _ in range(50)]
    assert {(s, version_of(b)) for s, b in answers} == {(200, winner)}
    print(f"race: {winner}'s writer won, {loser}'s got exit 1: {results[loser][1].strip()}")
    walk.assert_no_failures(since, "the race")


def test_no_request_failed_during_the_whole_walk(walk: Walk) -> None:
    outcomes = walk.load.snapshot()
    failed = [o for o in outcomes if o.status != 200 or o.version not in ("v1", "v2")]
    print(f"the load generator: {len(outcomes)} answers over the walk, {len(failed)} failed")
    assert outcomes and not failed, failed[:5]
