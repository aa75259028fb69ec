"""namerd with io.l5d.k8s storage restarted while the Kubernetes API is unreachable (found
by the traffic-shifting walkthrough, issue 14 item 6).

The mesh keeps its last known bindings while namerd is away.  But a namerd that comes back
before its storage has listed the DTab objects (the API down, or just slower than the
mesh's reconnect) answers as if no dtab existed: ``GET /api/1/dtabs/default`` 404 and
``/api/1/bind/default`` ``{"type": "neg"}``.  The mesh, reconnecting, takes that answer
and replaces the good bindings with ``neg``, so requests fail although nothing about the
dtab changed.  linkerd 1's namerd stays ``pending`` until its storage has answered.

Marked xfail (not strict) until the storage answers pending before its first list: the
assertion is the behaviour wanted, and the test then recovers (API back) either way.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from l5d_testing import free_port, wait_until
from shifting_world import BASE, ShiftingWorld, version_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "namerd"))
from k8s_dtab_fake_api import FakeDtabApi  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def k8s_world(tmp_path: Path) -> Iterator[tuple[ShiftingWorld, FakeDtabApi]]:
    api = FakeDtabApi(free_port())
    world = ShiftingWorld(tmp_path, "k8s", api.port)
    try:
        api.start()
        world.start()
        yield world, api
    finally:
        world.stop()
        api.stop()


@pytest.mark.xfail(
    strict=False,
    reason="io.l5d.k8s storage answers bind 'neg' before its first list of the DTab objects "
    "(l5d_twisted/namerd/k8s_store.py: observe() is None until synced)",
)
def test_namerd_restarted_while_the_api_is_down_keeps_the_mesh_on_its_bindings(
    k8s_world: tuple[ShiftingWorld, FakeDtabApi],
) -> None:
    world, api = k8s_world
    created = world.cli("create", "default", "-", stdin=BASE + "/host/world => /srv/world-v2\n")
    assert created.returncode == 0, created.stderr
    world.until_answer("v2", timeout=30.0)

    world.kill_namerd()
    api.stop()  # the Kubernetes API unreachable too
    before = world.metrics()["connects"]
    world.start_namerd()
    # the mesh's watches reconnect (backoff at most 1 s) to the namerd without dtabs
    wait_until(lambda: world.metrics()["connects"] > before, timeout=15.0, what="reconnect")
    try:
        failed = []
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            status, body = world.world()
            if (status, version_of(body)) != (200, "v2"):
                failed.append((status, body[:200]))
        assert not failed, f"{len(failed)} failed, e.g. {failed[0]}"
    finally:
        api.start()
        # with the API back, namerd lists the dtab and the mesh routes to v2 again
        world.until_answer("v2", timeout=30.0)
