"""An emulated Kubernetes API (kmock's KubernetesEmulator) on loopback, preloaded with the
EndpointSlices of a simulated cluster, for running the rendered chart as local processes.

    python3 chart_kmock_api.py --port N --objects objects.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

import kmock

RESOURCES = {
    "discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    "v1/endpoints": "Endpoints",
}


async def serve(port: int, objects: list[dict]) -> None:
    async with (
        kmock.KubernetesEmulator() as emulator,
        kmock.Server(emulator, host="127.0.0.1", port=port),
    ):
        for resource, kind in RESOURCES.items():
            emulator.resources[resource] = {
                "kind": kind,
                "namespaced": True,
                "verbs": ["list", "watch", "get", "create", "patch", "delete"],
            }
        for obj in objects:
            resource = next(r for r, kind in RESOURCES.items() if kind == obj["kind"])
            emulator.objects[resource, obj["metadata"]["namespace"], obj["metadata"]["name"]] = obj
        print(f"emulated API on 127.0.0.1:{port} with {len(objects)} objects", flush=True)
        # Stop at once on SIGTERM: open watch streams would hold a graceful shutdown.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, os._exit, 0)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--objects", required=True)
    args = parser.parse_args()
    with open(args.objects) as f:
        objects = json.load(f)
    asyncio.run(serve(args.port, objects))


if __name__ == "__main__":
    main()
