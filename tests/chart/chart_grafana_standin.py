"""A stand-in for the parts of Grafana's HTTP API that `l5d-twisted smoke` reads, served
with twisted.web on loopback (no Grafana binary here).

    python3 chart_grafana_standin.py --port N --dashboards DIR [--unhealthy]

Like Grafana's file provisioning, every *.json file in DIR is a dashboard served at
/api/dashboards/uid/<its uid>; /api/health answers Grafana's health document.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from twisted.internet import reactor
from twisted.web import resource, server


class Health(resource.Resource):
    isLeaf = True

    def __init__(self, healthy: bool) -> None:
        super().__init__()
        self.healthy = healthy

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        if not self.healthy:
            request.setResponseCode(503)
            return json.dumps({"database": "failing", "version": "11.6.0-standin"}).encode()
        return json.dumps(
            {"commit": "standin", "database": "ok", "version": "11.6.0-standin"}
        ).encode()


class DashboardsByUid(resource.Resource):
    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        uid = path.decode()
        for file in sorted(self.folder.glob("*.json")):
            model = json.loads(file.read_text())
            if model.get("uid") == uid:
                body = {
                    "meta": {"slug": uid, "provisioned": True, "provisionedExternalId": file.name},
                    "dashboard": model,
                }
                return JsonResource(200, body)
        return JsonResource(404, {"message": "Dashboard not found"})


class JsonResource(resource.Resource):
    isLeaf = True

    def __init__(self, code: int, body: object) -> None:
        super().__init__()
        self.code = code
        self.body = body

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(self.body).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--dashboards", required=True)
    parser.add_argument("--unhealthy", action="store_true")
    args = parser.parse_args()
    root = resource.Resource()
    api = resource.Resource()
    dashboards = resource.Resource()
    root.putChild(b"api", api)
    api.putChild(b"health", Health(not args.unhealthy))
    api.putChild(b"dashboards", dashboards)
    dashboards.putChild(b"uid", DashboardsByUid(Path(args.dashboards)))
    reactor.listenTCP(args.port, server.Site(root), interface=args.host)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
