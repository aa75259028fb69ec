"""Run kmock's KubernetesEmulator serving v1 Services on 127.0.0.1:PORT (a process), for
the io.l5d.k8s.external namer's tests.

    python3 k8s_kmock_services_server.py --port 8001 [--objects services.json]

``services.json`` is a list of Service objects (each with ``metadata.namespace``) preloaded
before serving; tests change them through the API: POST, PATCH (merge), DELETE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

import kmock

SERVICES = "v1/services"


async def serve(port: int, objects: list[dict]) -> None:
    async with (
        kmock.KubernetesEmulator() as emulator,
        kmock.Server(emulator, host="127.0.0.1", port=port),
    ):
        emulator.resources[SERVICES] = {
            "kind": "Service",
            "namespaced": True,
            "verbs": ["list", "watch", "get", "create", "patch", "delete"],
        }
        for obj in objects:
            meta = obj["metadata"]
            emulator.objects[SERVICES, meta.get("namespace", "default"), meta["name"]] = obj
        print(f"kmock serving Services on 127.0.0.1:{port}", flush=True)
        # Exit at once on SIGTERM: open watch streams never end by themselves.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, os._exit, 0)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--objects")
    args = parser.parse_args()
    objects = []
    if args.objects:
        with open(args.objects) as f:
            objects = json.load(f)
    asyncio.run(serve(args.port, objects))


if __name__ == "__main__":
    main()
