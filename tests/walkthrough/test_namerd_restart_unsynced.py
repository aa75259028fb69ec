"""namerd with io.l5d.k8s storage restarted while the Kubernetes API is unreachable (found
by the traffic-shifting walkthrough, issue 14 item 6).

The mesh keeps its last known bindings while namerd is away.  A namerd that came back
before its storage had listed the DTab objects (the API down, or just slower than the
mesh's reconnect) used to answer as if no dtab existed: ``GET /api/1/dtabs/default`` 404
and ``/api/1/bind/default`` ``{"type": "neg"}``; the reconnecting mesh took that answer and
replaced its good bindings with ``neg``: 4,403 requests failed in 2 s with 502 "the name is
negative" (before d7c0ca5).  namerd now answers 503 until its storage is synced, which the
mesh's interpreter treats as any namerd failure: it keeps its last answers and retries.
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


def test_namerd_restarted_while_the_api_is_down_keeps_the_mesh_on_its_bindings(
    k8s_world: tuple[ShiftingWorld, FakeDtabApi],
) -> None:
    world, api = k8s_world
    created = world.cli("create", "default", "-", stdin=BASE + "/host/world => /srv/world-v2\n")
    assert created.returncode == 0, created.stderr
    world.until_answer("v2", timeout=30.0)

    world.kill_namerd()
    api.stop()  # the Kubernetes API unreachable too
    world.start_namerd(ready=False)  # it cannot be ready: the API is down
    before = world.metrics()  # from now on, namerd is listening

    def retried() -> bool:
        now = world.metrics()
        return bool(
            now["connects"] > before["connects"] or now["failures"] > before["failures"] + 2
        )

    # the mesh's watches try the restarted namerd (backoff at most 1 s): a stream
    # established (the bug: its answer is neg) or refused (503, the mesh retries)
    wait_until(retried, timeout=15.0, what="the mesh trying the restarted namerd")
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
