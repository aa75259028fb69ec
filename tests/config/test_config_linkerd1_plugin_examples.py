"""linkerd 1's own example configs for io.l5d.statsd, io.l5d.influxdb, io.l5d.tracelog,
io.l5d.rewrite and io.l5d.k8s.external (the linkerd repository's ``linkerd/examples``, as
written there) pass ``l5d-twisted check``; the rewriting example also routes as linkerd 1's
comment says: ``/foo/api`` to ``/#/io.l5d.fs/foo``."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from l5d_testing import REPO, Processes, free_port, wait_for_port

FS = """\
namers:
- kind: io.l5d.fs
  rootDir: linkerd/examples/io.l5d.fs
"""

EXAMPLES = {
    "statsd.yaml": """\
        # A fairly minimal linkerd configuration with statsd exporting.

        admin:
          port: 9990

        telemetry:
        - kind: io.l5d.statsd
          experimental: true
          prefix: linkerd
          hostname: 127.0.0.1
          port: 8125
          gaugeIntervalMs: 10000
          sampleRate: 1.0 # for testing only, setting this to 1.0 will increase linkerd latency

        # An example service discovery backend that uses the filesystem to resolve endpoints.
        namers:
        - kind: io.l5d.fs
          rootDir: linkerd/examples/io.l5d.fs

        routers:
        - protocol: http
          dtab: /svc => /#/io.l5d.fs
          servers:
          - port: 4140
            ip: 0.0.0.0
        """,
    "influxdb.yaml": """\
        namers:
        - kind: io.l5d.fs
          rootDir: linkerd/examples/io.l5d.fs

        routers:
        - protocol: http
          dtab: /svc => /#/io.l5d.fs;
          servers:
          - port: 4140

        telemetry:
        - kind: io.l5d.influxdb
        """,
    "tracelog.yaml": """\
        # Log trace data to the console.
        namers:
        - kind: io.l5d.fs
          rootDir: linkerd/examples/io.l5d.fs

        routers:
        - protocol: http
          dtab: |
            /svc => /#/io.l5d.fs
          servers:
          - port: 4140

        telemetry:
        - kind: io.l5d.tracelog
          sampleRate: 0.2
          level: INFO
        """,
    "rewriting.yaml": """\
        # An example of how to use the rewriting namer to reorder path segments.  This
        # resolves names like /http/foo/api to /#/io.l5d.fs/foo.
        namers:
        - kind: io.l5d.fs
          rootDir: linkerd/examples/io.l5d.fs
        - kind: io.l5d.rewrite
          prefix: /apiToSrv
          pattern: "/{service}/api"
          name: "/srv/{service}"

        routers:
        - protocol: http
          identifier:
            kind: io.l5d.path
            segments: 2
          dtab: |
            /srv => /#/io.l5d.fs ;
            /svc => /#/apiToSrv ;
          servers:
          - port: 4140
        """,
    "k8s.yaml": """\
        # Do service discovery lookups against the k8s endpoints API.
        namers:
          # This namer resolves to the internal IP of the destination pod.
        - kind: io.l5d.k8s
          host: localhost
          port: 8001
          # This namer resolves to the external facing load balancer IP of the service
        - kind: io.l5d.k8s.external
          experimental: true
          host: localhost
          port: 8001

        routers:
        - protocol: http
          dtab: |
            /svc => /#/io.l5d.k8s/foo/http;
          servers:
          - port: 4140
        """,
}


def fs_dir(root: Path) -> Path:
    """linkerd/examples/io.l5d.fs under ``root`` (the examples' relative rootDir)."""
    disco = root / "linkerd" / "examples" / "io.l5d.fs"
    disco.mkdir(parents=True, exist_ok=True)
    return disco


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_linkerd1_example_passes_check(name: str, tmp_path: Path) -> None:
    fs_dir(tmp_path)
    config = tmp_path / name
    config.write_text(textwrap.dedent(EXAMPLES[name]))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # run from the config's folder: linkerd 1 resolved rootDir against the working directory
    result = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "check", name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_rewriting_example_routes_foo_api_to_the_fs_name_foo(
    processes: Processes, tmp_path: Path
) -> None:
    world_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    (fs_dir(tmp_path) / "foo").write_text(f"127.0.0.1 {world_port}\n")
    text = textwrap.dedent(EXAMPLES["rewriting.yaml"]).replace(
        "  - port: 4140\n", f"  - port: {proxy_port}\n    ip: 127.0.0.1\n"
    )
    (tmp_path / "rewriting.yaml").write_text(
        f"admin: {{ip: 127.0.0.1, port: {admin_port}}}\n" + text
    )
    processes.start(
        sys.executable,
        "-m",
        "l5d_twisted",
        "run",
        "rewriting.yaml",
        cwd=str(tmp_path),
        name="mesh",
    )
    for port in (world_port, proxy_port, admin_port):
        wait_for_port("127.0.0.1", port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    conn.request("GET", "/foo/api")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    assert body.startswith(b"world")
    conn.request("GET", "/foo/web")  # not matched by the pattern: negative, so no route
    response = conn.getresponse()
    assert response.status == 502 and b"/svc/foo/web" in response.read()
    conn.close()
