"""Optional parts are imported only when a config uses them (issue 15 item 3).

``l5d-twisted run`` on a plain-HTTP config must not import TLS support (pyOpenSSL,
cryptography, service_identity: ~12 MB), the Kubernetes plugins (treq, the watch code),
twisted.web's HTTP/2 or plugin modules the config does not name; a config that uses TLS
still gets it.  The run tests look at the real process's ``sys.modules`` once it has routed
a request.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from l5d_pki import make_pki
from l5d_testing import REPO, Processes, free_port

from l5d_twisted import registry
from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.tls_imports import config_uses_tls, text_may_use_tls

LEFT_OUT_OF_PLAIN_RUN = (
    "OpenSSL",
    "cryptography",
    "service_identity",
    "twisted.internet.ssl",
    "twisted.protocols.tls",
    "treq",
    "twisted.web.client",
    "l5d_twisted.k8s.namer",
    "l5d_twisted.k8s.watcher",
    "h2",
    "l5d_twisted.namers.memory",
    "l5d_twisted.balancers.ewma",
    # the Prometheus text is the mesh's own (telemetry.promtext): prometheus-client's
    # exposition module imports ssl, wsgiref, http.server
    "prometheus_client",
    # Python's OpenSSL bindings (libssl, libcrypto): tls_imports.leave_out_openssl
    "ssl",
    "_ssl",
    "_hashlib",
    "difflib",  # config.decode's did-you-mean, only for a config with a mistake
    "yaml._yaml",  # libyaml: the config reader uses PyYAML's Python composer
)

# Runs `l5d-twisted run CONFIG` in this process; once the router answers, writes the
# modules loaded to OUT and sends itself SIGTERM (the mesh drains and exits 0).
RUNNER = """\
import gc, json, os, signal, socket, sys, threading, time

from l5d_twisted.cli import main

CONFIG, PORT, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def report():
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\\r\\nHost: backend\\r\\nConnection: close\\r\\n\\r\\n")
                if s.recv(64).startswith(b"HTTP/1.1 "):
                    break
        except OSError:
            time.sleep(0.05)
    loaded = sorted(name for name, module in sys.modules.items() if module is not None)
    while not gc.isenabled() and time.monotonic() < deadline:
        time.sleep(0.05)  # off while starting; on again once the mesh has started
    with open(OUT, "w") as f:
        json.dump({"modules": loaded, "gc": gc.isenabled(), "frozen": gc.get_freeze_count()}, f)
    os.kill(os.getpid(), signal.SIGTERM)


threading.Thread(target=report, daemon=True).start()
raise SystemExit(main(["run", CONFIG, "--log-level", "warn"]))
"""

PLAIN = """\
admin:
  ip: 127.0.0.1
  port: {admin_port}
namers:
- kind: io.l5d.fs
  rootDir: {disco}
routers:
- protocol: http
  dtab: /svc => /#/io.l5d.fs;
  servers:
  - ip: 127.0.0.1
    port: {port}
telemetry:
- kind: io.l5d.prometheus
"""

CLIENT_TLS = PLAIN.replace(
    "  servers:\n", "  client:\n    tls:\n      disableValidation: true\n  servers:\n"
)


def run_and_list_modules(
    processes: Processes, tmp_path: Path, config_text: str
) -> tuple[set[str], dict[str, Any]]:
    (tmp_path / "disco").mkdir(exist_ok=True)
    port = free_port()
    config = tmp_path / "l5d.yaml"
    config.write_text(
        config_text.format(admin_port=free_port(), port=port, disco=tmp_path / "disco")
    )
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    out = tmp_path / "modules.json"
    proc = processes.start(sys.executable, str(runner), str(config), str(port), str(out))
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run did not exit:\n{processes.log(proc)}")
    assert proc.returncode == 0, processes.log(proc)
    assert out.exists(), processes.log(proc)
    report = json.loads(out.read_text())
    return set(report.pop("modules")), report


@pytest.mark.slow
def test_a_plain_http_run_imports_no_tls_k8s_http2_or_unused_plugins(
    processes: Processes, tmp_path: Path
) -> None:
    loaded, gc_state = run_and_list_modules(processes, tmp_path, PLAIN)
    assert "l5d_twisted.namers.fs" in loaded  # what the config names is there
    assert "l5d_twisted.telemetry.prometheus_telemeter" in loaded
    assert "yaml" in loaded and "l5d_twisted.config.yamldoc" in loaded
    assert "twisted.internet.tcp" in loaded
    assert sorted(set(LEFT_OUT_OF_PLAIN_RUN) & loaded) == []
    # the collector, off during start-up, runs again, with the start-up's objects frozen
    assert gc_state["gc"] and gc_state["frozen"] > 10_000, gc_state


@pytest.mark.slow
def test_a_run_whose_config_uses_tls_has_it(processes: Processes, tmp_path: Path) -> None:
    loaded, _ = run_and_list_modules(processes, tmp_path, CLIENT_TLS)
    assert {"OpenSSL", "service_identity", "twisted.internet.ssl"} <= loaded
    assert {"ssl", "_ssl", "_hashlib"} <= loaded  # as before: nothing of Python's left out


def config(text: str, tmp_path: Path) -> Any:
    (tmp_path / "disco").mkdir(exist_ok=True)
    return load_config(text.format(admin_port=9990, port=4140, disco=tmp_path / "disco"))


def test_config_uses_tls_finds_every_tls_block_and_the_k8s_plugins(tmp_path: Path) -> None:
    assert not config_uses_tls(config(PLAIN, tmp_path))
    assert config_uses_tls(config(CLIENT_TLS, tmp_path))
    per_prefix = PLAIN.replace(
        "  servers:",
        "  client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /#/io.l5d.fs/secure\n"
        "      tls:\n        commonName: secure\n  servers:",
    )
    assert config_uses_tls(config(per_prefix, tmp_path))
    server_tls = PLAIN.replace(
        "    port: {port}\n",
        "    port: {port}\n    tls:\n      certPath: /c.pem\n      keyPath: /k.pem\n",
    )
    assert config_uses_tls(config(server_tls, tmp_path))
    k8s = PLAIN.replace("namers:\n", "namers:\n- kind: io.l5d.k8s\n")
    assert config_uses_tls(config(k8s, tmp_path))


def tls_variants() -> list[str]:
    """Configs that use TLS, each in its own way."""
    admin_tls = PLAIN.replace(
        "  port: {admin_port}\n",
        "  port: {admin_port}\n  tls:\n    certPath: /c.pem\n    keyPath: /k.pem\n",
        1,
    )
    per_prefix = PLAIN.replace(
        "  servers:",
        "  client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /#/io.l5d.fs/secure\n"
        "      tls:\n        commonName: secure\n  servers:",
    )
    server_tls = PLAIN.replace(
        "    port: {port}\n",
        "    port: {port}\n    tls:\n      certPath: /c.pem\n      keyPath: /k.pem\n",
    )
    k8s = PLAIN.replace("namers:\n", "namers:\n- kind: io.l5d.k8s\n")
    k8s_external = PLAIN.replace("namers:\n", "namers:\n- kind: io.l5d.k8s.external\n")
    return [CLIENT_TLS, admin_tls, per_prefix, server_tls, k8s, k8s_external]


def test_the_file_rule_for_pythons_openssl_is_broader_than_the_config_rule(
    tmp_path: Path,
) -> None:
    # run leaves ssl/_hashlib out from the file's YAML, before the config is decoded (which
    # imports Twisted): every config that uses TLS must keep them
    assert not text_may_use_tls(PLAIN)
    variants = tls_variants()
    for text in variants:
        assert config_uses_tls(config(text, tmp_path)), text
        assert text_may_use_tls(text), text
    # conservative: a disabled tls block, anchors, and text the safe loader cannot read
    disabled = PLAIN.replace("  servers:", "  client:\n    tls:\n      enabled: false\n  servers:")
    assert not config_uses_tls(config(disabled, tmp_path))
    assert text_may_use_tls(disabled)
    assert text_may_use_tls("a: &x {tls: {}}\nb: *x\n")
    assert text_may_use_tls("routers: [unclosed\n")
    assert not text_may_use_tls("# tls is only mentioned in a comment\nrouters: []\n")
    # and the configs the project ships or tests with
    found = 0
    for path in sorted(REPO.glob("examples/**/*.yaml")) + sorted(
        REPO.glob("tests/**/fixtures/*.yaml")
    ):
        text = path.read_text()
        try:
            decoded = load_config(text, str(path), str(path.parent))
        except ConfigErrors:
            continue
        if config_uses_tls(decoded):
            found += 1
            assert text_may_use_tls(text), path
    assert found >= 1


@pytest.mark.slow
def test_a_run_with_only_admin_tls_keeps_pythons_openssl(
    processes: Processes, tmp_path: Path
) -> None:
    # a tls block the process serves with only at start (admin): the run answers on its
    # router with Python's ssl and _hashlib present (left out only when no tls is named)
    pki = make_pki(tmp_path)
    text = PLAIN.replace(
        "  port: {admin_port}\n",
        f"  port: {{admin_port}}\n  tls:\n    certPath: {pki['server_crt']}\n"
        f"    keyPath: {pki['server_key']}\n",
        1,
    )
    loaded, _ = run_and_list_modules(processes, tmp_path, text)
    assert {"ssl", "_hashlib", "OpenSSL"} <= loaded


def test_the_plugin_index_names_the_module_of_every_registered_kind() -> None:
    index = registry.plugin_index()
    assert index is not None  # every plugin module's source is readable in a checkout
    registry.load_all_plugins()
    for reg in registry.REGISTRIES.values():
        ours = {
            kind: plugin.factory.__module__
            for kind, plugin in reg._plugins.items()
            if plugin.factory.__module__.startswith("l5d_twisted.")
        }
        assert index.get(reg.category, {}) == ours, reg.category


def test_a_kind_is_found_without_importing_other_plugins() -> None:
    script = textwrap.dedent(
        """
        import sys
        from l5d_twisted.registry import NAMERS, TELEMETERS, plugin_index
        assert NAMERS.get("io.l5d.fs").kind == "io.l5d.fs"
        assert "io.l5d.k8s" in NAMERS and "io.l5d.k8s" in NAMERS.kinds()
        assert "io.l5d.recentRequests" in TELEMETERS.kinds()
        plugins = {m for kinds in plugin_index().values() for m in kinds.values()}
        print(sorted(plugins & set(sys.modules)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert out.strip() == "['l5d_twisted.namers.fs']", out


def test_run_turns_the_collector_back_on_when_it_returns_early(tmp_path: Path) -> None:
    import argparse
    import gc

    from l5d_twisted.cli.run import run

    args = argparse.Namespace(config=str(tmp_path / "missing.yaml"), admin_ip=None)
    assert run(args) == 2
    assert gc.isenabled()
