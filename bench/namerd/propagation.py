"""Propagation of a dtab change through namerd to routed traffic (issue 14), one command:

    python3 bench/namerd/propagation.py                    # 20 updates, 3 load threads
    python3 bench/namerd/propagation.py --updates 50 --load-threads 0
    python3 bench/namerd/propagation.py --via http         # PUT from here, no CLI start-up
    python3 bench/namerd/propagation.py --storage k8s      # dtabs in an emulated Kubernetes API
    python3 bench/namerd/propagation.py --json out.json    # also every sample

On 127.0.0.1 and free ports, the world of ``tests/walkthrough`` (shifting_world.py):
world-v1 and world-v2, a real ``l5d-twisted namerd`` (io.l5d.inMemory, or io.l5d.k8s with
``--storage k8s``; io.l5d.fs naming both) and a real mesh (``l5d-twisted run``, one router binding through
``io.l5d.namerd.http``).  ``dtab create`` sets ``/host/world => /srv/world-v1``; then
``--updates`` times, alternating v2 / v1, the operator's ``dtab update`` (get, edit,
update with the version, two CLI processes) and, once it returns, requests through the
mesh back to back until one is answered by the new target.

Reported per update, p50 / p90 / max:

- ``after_return``: from the CLI's ``dtab update`` returning to that first answer (what
  tests/walkthrough measures; bounded below by one request's round trip, since namerd
  sends the watch line before it answers the write);
- ``load_first``: with load threads, the first answer from the new target to a load
  request sent after the write began (so no straggler routed before the previous
  update counts), relative to the CLI's return (negative: the mesh routed there before the CLI process had exited);
- ``from_update``: with load threads, that first load answer relative to the start of
  the ``dtab update`` process (the operator's one command, Python start-up included), or
  with ``--via http`` to the PUT being sent (namerd to the mesh, nothing else);
- ``cli``: the whole write: get, edit and update (two CLI processes), or GET + PUT.

Every load answer is also checked: ``failed`` counts non-200s and errors (should be 0).
Wall-clock figures on a shared machine: record ``uptime`` next to them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "walkthrough"))
sys.path.insert(0, str(REPO / "tests" / "namerd"))

from k8s_dtab_fake_api import FakeDtabApi  # noqa: E402
from l5d_testing import free_port  # noqa: E402
from shifting_world import BASE, LoadGenerator, ShiftingWorld  # noqa: E402


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(p90 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
    }


def put(world: ShiftingWorld, dtab: str) -> float:
    """namerd's API without the CLI: GET the version, PUT with If-Match; when the PUT
    was sent."""
    conn = http.client.HTTPConnection("127.0.0.1", world.ports["namerd"], timeout=15)
    try:
        conn.request("GET", "/api/1/dtabs/default")
        rsp = conn.getresponse()
        rsp.read()
        version = rsp.getheader("etag", "")
        sent = time.monotonic()
        headers = {"Content-Type": "application/dtab", "If-Match": version}
        conn.request("PUT", "/api/1/dtabs/default", body=dtab, headers=headers)
        rsp = conn.getresponse()
        rsp.read()
        if rsp.status != 204:
            raise SystemExit(f"PUT answered {rsp.status}")
        return sent
    finally:
        conn.close()


def run(
    updates: int, load_threads: int, workdir: Path, via: str = "cli", storage: str = "inMemory"
) -> dict[str, Any]:
    api = FakeDtabApi(free_port()) if storage == "k8s" else None
    world = ShiftingWorld(workdir, storage, api.port if api else 0)
    load = LoadGenerator(0, threads=0)
    try:
        if api is not None:
            api.start()
        world.start()
        created = world.cli("create", "default", "-", stdin=BASE + "/host/world => /srv/world-v1\n")
        if created.returncode != 0:
            raise SystemExit(f"dtab create failed: {created.stderr}")
        world.until_answer("v1", timeout=30.0)
        load = LoadGenerator(world.ports["mesh"], threads=load_threads)
        load.start()
        after_return: list[float] = []
        load_first: list[float] = []
        from_update: list[float] = []
        cli: list[float] = []
        for i in range(updates):
            target = "v2" if i % 2 == 0 else "v1"
            started = time.monotonic()
            if via == "cli":
                world.get_edit_update(f"/host/world => /srv/world-{target}")
            else:
                world.update_started = put(world, f"{BASE}/host/world => /srv/world-{target}\n")
            returned = time.monotonic()
            after_return.append(world.until_answer(target, timeout=10.0))
            cli.append(returned - started)
            if load_threads:
                deadline = time.monotonic() + 10.0
                first = None
                while first is None and time.monotonic() < deadline:
                    first = next(
                        (
                            o.at
                            for o in load.snapshot()
                            if o.sent >= started and o.version == target
                        ),
                        None,
                    )
                    if first is None:
                        world.world()
                if first is not None:
                    load_first.append(first - returned)
                    from_update.append(first - world.update_started)
        load.stop()
        outcomes = load.snapshot()
        failed = load.failures()
        result: dict[str, Any] = {
            "updates": updates,
            "load_threads": load_threads,
            "via": via,
            "storage": storage,
            "after_return": summary(after_return),
            "cli": summary(cli),
            "load_answers": len(outcomes),
            "failed": len(failed),
            "samples_ms": {
                "after_return": [round(t * 1000, 2) for t in after_return],
                "load_first": [round(t * 1000, 2) for t in load_first],
                "from_update": [round(t * 1000, 2) for t in from_update],
                "cli": [round(t * 1000, 2) for t in cli],
            },
        }
        if load_first:
            result["load_first"] = summary(load_first)
            result["from_update"] = summary(from_update)
        return result
    finally:
        load.stop()
        world.stop()
        if api is not None:
            api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--load-threads", type=int, default=3)
    parser.add_argument(
        "--via",
        choices=("cli", "http"),
        default="cli",
        help="cli: the operator's get/edit/update (default); http: GET + PUT with If-Match "
        "from this process, without the CLI's start-up",
    )
    parser.add_argument(
        "--storage",
        choices=("inMemory", "k8s"),
        default="inMemory",
        help="namerd's storage; k8s: DTab objects in an emulated Kubernetes API "
        "(tests/namerd/k8s_dtab_fake_api.py, a thread of this process)",
    )
    parser.add_argument("--json", help="also write the whole result to this file")
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="namerd-propagation-") as tmp:
        result = run(args.updates, args.load_threads, Path(tmp), args.via, args.storage)
    result["uptime"] = uptime
    for key in ("after_return", "load_first", "from_update", "cli"):
        if key in result:
            s = result[key]
            print(
                f"{key:>12}: p50 {s['p50_ms']:.1f} ms, p90 {s['p90_ms']:.1f} ms, "
                f"max {s['max_ms']:.1f} ms, min {s['min_ms']:.1f} ms"
            )
    print(
        f"{result['updates']} updates via {result['via']}, {result['storage']} storage, "
        f"{result['load_threads']} load threads: "
        f"{result['load_answers']} load answers, {result['failed']} failed; load: {uptime}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
