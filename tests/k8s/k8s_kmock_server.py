"""Run kmock's KubernetesEmulator on 127.0.0.1:PORT as a process (for real-process tests).

    python3 k8s_kmock_server.py --port 8001 [--objects objects.json] [--no-slices]

``objects.json`` is a list of API objects (Endpoints and/or EndpointSlices, each with
``metadata.namespace``) preloaded before serving.  Tests change objects through the API
itself: POST to create, PATCH to change (kmock answers PUT with 404), DELETE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

import kmock

SLICES = "discovery.k8s.io/v1/endpointslices"
ENDPOINTS = "v1/endpoints"


def resource_of(obj: dict) -> str:
    return SLICES if obj.get("kind") == "EndpointSlice" else ENDPOINTS


async def serve(port: int, objects: list[dict], slices: bool) -> None:
    async with (
        kmock.KubernetesEmulator() as emulator,
        kmock.Server(emulator, host="127.0.0.1", port=port),
    ):
        emulator.resources[ENDPOINTS] = {
            "kind": "Endpoints",
            "namespaced": True,
            "verbs": ["list", "watch", "get", "create", "patch", "delete"],
        }
        if slices:
            emulator.resources[SLICES] = {
                "kind": "EndpointSlice",
                "namespaced": True,
                "verbs": ["list", "watch", "get", "create", "patch", "delete"],
            }
        for obj in objects:
            meta = obj["metadata"]
            emulator.objects[resource_of(obj), meta.get("namespace", "default"), meta["name"]] = obj
        print(f"kmock serving on 127.0.0.1:{port}", flush=True)
        # Exit at once on SIGTERM: a graceful aiohttp shutdown would wait for the open
        # watch streams, which never end by themselves.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, os._exit, 0)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--objects")
    parser.add_argument("--no-slices", action="store_true")
    args = parser.parse_args()
    objects = []
    if args.objects:
        with open(args.objects) as f:
            objects = json.load(f)
    asyncio.run(serve(args.port, objects, not args.no_slices))


if __name__ == "__main__":
    main()
