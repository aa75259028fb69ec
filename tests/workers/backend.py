"""A loopback HTTP backend for the workers tests: ``python3 backend.py PORT``.

``GET /`` answers ``ok`` at once; ``GET /slow`` answers only once ``GET /release`` has been
asked (so a test holds a request in flight for as long as it needs, without sleeping).
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

released = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/release":
            released.set()
        elif self.path == "/slow":
            released.wait(120)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
