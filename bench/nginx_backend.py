"""The nginx backend the benches proxy to: one worker answering every request with a fixed
small 200 over keep-alive connections.

``bench/proxy_bench.py`` and ``bench/percore/breakdown.py`` use the defaults;
``bench/scale/names.py`` holds one pooled connection per name, so it asks for more
connections (and the file limit they need) and for keep-alive longer than the proxy's
``idleTimeMs``, so that it is the proxy that closes them.
"""

from __future__ import annotations

from pathlib import Path


def backend_conf(
    work: Path | str,
    port: int,
    connections: int = 8192,
    open_files: int | None = None,
    keepalive_timeout: str | None = None,
) -> str:
    """nginx.conf text for a backend on 127.0.0.1:``port`` keeping its files in ``work``
    (which must hold a ``tmp`` directory)."""
    rlimit = f"worker_rlimit_nofile {open_files};\n" if open_files is not None else ""
    keepalive = f"  keepalive_timeout {keepalive_timeout};\n" if keepalive_timeout else ""
    return (
        "worker_processes 1;\n"
        f"{rlimit}"
        "daemon off;\n"
        f"pid {work}/backend.pid;\n"
        f"error_log {work}/backend-error.log warn;\n"
        f"events {{ worker_connections {connections}; }}\n"
        "http {\n"
        "  access_log off;\n"
        f"  client_body_temp_path {work}/tmp;\n"
        f"  proxy_temp_path {work}/tmp;\n"
        f"  fastcgi_temp_path {work}/tmp;\n"
        f"  uwsgi_temp_path {work}/tmp;\n"
        f"  scgi_temp_path {work}/tmp;\n"
        "  keepalive_requests 1000000;\n"
        f"{keepalive}"
        "  server {\n"
        f"    listen 127.0.0.1:{port} backlog=4096;\n"
        '    location / { return 200 "hello from the backend\\n"; }\n'
        "  }\n"
        "}\n"
    )
