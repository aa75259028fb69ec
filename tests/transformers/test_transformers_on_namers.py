"""linkerd 1's ``namers[].transformers``: transformers applied to one namer's bound names.

The namer's answer is transformed before the interpreter sees it (its bound ids read
``/%/<transformer>/#/<namer>/...``); other namers are untouched; an answer that is still a
path to bind (io.l5d.rewrite) passes unchanged, as linkerd 1's NameTreeTransformer did.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock

from l5d_twisted.config import load_config
from l5d_twisted.mesh import Mesh
from l5d_twisted.naming.addr import AddrBound, Address
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.nametree import Leaf
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok
from l5d_twisted.transformers.namer import TransformedNamer, is_bound

CONFIG = """
admin: {port: 0}
namers:
- kind: io.l5d.memory
  prefix: /moved
  names: {hello: ["127.0.0.1:8080", "127.0.0.2:8081", "10.1.1.1:9000"]}
  transformers:
  - kind: io.l5d.port
    port: 4141
  - kind: io.l5d.specificHost
    host: 127.0.0.2
- kind: io.l5d.memory
  prefix: /plain
  names: {hello: ["127.0.0.1:8080"]}
routers:
- protocol: http
  servers: [{port: 0}]
  dtab: |
    /svc/moved => /#/moved;
    /svc/plain => /#/plain;
"""


def _bound_leaf(mesh: Mesh, name: str) -> Any:
    interpreter = mesh.routers[0].interpreter
    state = interpreter.bind(
        Dtab.read(mesh.config.routers[0].dtab.show()), Path.read(name)
    ).sample()
    assert isinstance(state, Ok), state
    tree = state.value
    assert isinstance(tree, Leaf), tree
    return tree.value


def test_a_namers_transformers_rewrite_its_bound_names_in_order() -> None:
    config = load_config(CONFIG)
    (moved, plain) = config.namers
    assert [t.kind for t in moved.transformers] == ["io.l5d.port", "io.l5d.specificHost"]
    assert plain.transformers == ()
    mesh = Mesh(config, MemoryReactorClock())
    assert mesh.start().called
    try:
        assert isinstance(mesh.namers["/moved"], TransformedNamer)
        bound = _bound_leaf(mesh, "/svc/moved/hello")
        # every endpoint moved to port 4141, then only those on 127.0.0.2 kept
        addr = bound.addr.sample()
        assert isinstance(addr, AddrBound)
        assert {(a.host, a.port) for a in addr.addresses} == {("127.0.0.2", 4141)}
        assert bound.id.show().startswith("/%/io.l5d.specificHost/127.0.0.2/%/io.l5d.port/4141/")
        assert bound.id.show().endswith("/#/moved/hello")
        # the other namer is not transformed
        untouched = _bound_leaf(mesh, "/svc/plain/hello")
        assert untouched.id.show() == "/#/plain/hello"
        assert {(a.host, a.port) for a in untouched.addr.sample().addresses} == {
            ("127.0.0.1", 8080)
        }
    finally:
        mesh.stop(0.0)


def test_a_namers_transformed_addresses_follow_the_namer() -> None:
    mesh = Mesh(load_config(CONFIG), MemoryReactorClock())
    mesh.start()
    try:
        bound = _bound_leaf(mesh, "/svc/moved/hello")
        seen: list[Any] = []
        bound.addr.observe(seen.append)
        memory = mesh.namers["/moved"].namer
        memory.set_addresses("hello", [Address("10.0.0.1", 80), Address("127.0.0.2", 7)])
        last = seen[-1]
        assert isinstance(last, AddrBound)
        assert {(a.host, a.port) for a in last.addresses} == {("127.0.0.2", 4141)}
        memory.set_addresses("hello", [Address("10.0.0.1", 80)])
        assert isinstance(seen[-1], AddrBound) and not seen[-1].addresses
    finally:
        mesh.stop(0.0)


def test_only_bound_answers_are_transformed() -> None:
    assert is_bound(Leaf(object())) is False
    path_answer = Leaf(Path.read("/svc/elsewhere"))
    assert not is_bound(path_answer)

    class Rewriting:
        def lookup(self, path: Path) -> Any:
            from l5d_twisted.naming.activity import ok

            return ok(path_answer)

        def state(self) -> Any:
            return {"rewrites": True}

    class Exploding:
        def transform(self, tree: Any) -> Any:
            raise AssertionError("a path answer must not be transformed")

    wrapped = TransformedNamer(Rewriting(), [Exploding()])
    state = wrapped.lookup(Path.read("/x")).sample()
    assert isinstance(state, Ok) and state.value == path_answer
    assert wrapped.state() == {"rewrites": True}


def test_bad_namer_transformers_are_config_errors_naming_the_key() -> None:
    import pytest

    from l5d_twisted.config import ConfigErrors

    with pytest.raises(ConfigErrors) as caught:
        load_config(
            "namers:\n- kind: io.l5d.memory\n  transformers:\n  - kind: io.l5d.port\n"
            "routers: [{protocol: http}]\n"
        )
    assert "namers[0].transformers[0]: missing required key 'port'" in str(caught.value)
    with pytest.raises(
        ConfigErrors, match=r"namers\[0\].transformers\[0\].kind: unknown transformer kind"
    ):
        load_config(
            "namers:\n- kind: io.l5d.memory\n  transformers: [{kind: io.l5d.nope}]\n"
            "routers: [{protocol: http}]\n"
        )


def test_a_real_mesh_routes_by_the_namers_transformed_addresses(
    processes: Any, tmp_path: Any
) -> None:
    """io.l5d.fs names world at a port nobody listens on; the namer's io.l5d.port
    transformer moves it to the port the world really listens on."""
    import http.client

    from l5d_testing import free_port, wait_for_port

    world_port, nobody_port, proxy_port, admin_port = (free_port() for _ in range(4))
    processes.l5d("example", "world", "--ip", "127.0.0.1", "--port", str(world_port), name="world")
    disco = tmp_path / "disco"
    disco.mkdir()
    (disco / "world").write_text(f"127.0.0.1 {nobody_port}\n")
    config = tmp_path / "linkerd.yaml"
    config.write_text(
        f"""
admin: {{ip: 127.0.0.1, port: {admin_port}}}
namers:
- kind: io.l5d.fs
  rootDir: {disco}
  transformers:
  - kind: io.l5d.port
    port: {world_port}
routers:
- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers: [{{ip: 127.0.0.1, port: {proxy_port}}}]
"""
    )
    processes.l5d("run", str(config), name="mesh")
    wait_for_port("127.0.0.1", world_port)
    wait_for_port("127.0.0.1", proxy_port)
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=20)
    conn.request("GET", "http://world/")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200, body
    assert body.startswith(f"world (127.0.0.1:{world_port})".encode()), body


def test_dtab_resolve_applies_a_namers_transformers_like_the_mesh(tmp_path: Any) -> None:
    """``l5d-twisted dtab resolve --config`` builds the namers as the mesh does."""
    import json
    import os
    import subprocess
    import sys

    config = tmp_path / "l5d.yaml"
    config.write_text(
        """
namers:
- kind: io.l5d.memory
  prefix: /mem
  names: {hello: ["127.0.0.5:1"]}
  transformers: [{kind: io.l5d.port, port: 4141}]
routers:
- protocol: http
  dtab: /svc => /#/mem
"""
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(
        [sys.executable, "-m", "l5d_twisted", "dtab", "resolve", "--config", str(config)]
        + ["--json", "hello"],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"]["addresses"] == ["127.0.0.5:4141"]


def test_a_namers_transformers_are_shown_and_read_back() -> None:
    import json

    from l5d_twisted.config import config_json

    config = load_config(CONFIG)
    shown = config_json(config)
    assert shown["namers"][0]["transformers"] == [
        {"kind": "io.l5d.port", "port": 4141},
        {"kind": "io.l5d.specificHost", "host": "127.0.0.2"},
    ]
    assert "transformers" not in shown["namers"][1]
    again = load_config(json.dumps({"namers": shown["namers"], "routers": [{}]}))
    assert again.namers == config.namers
