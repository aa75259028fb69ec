"""Checks across fields: labels, ports, namer prefixes, dtab references to namers."""

from __future__ import annotations

import pytest

from l5d_twisted.config import ConfigErrors, load_config


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_config(text, "c.yaml")
    return [str(e) for e in info.value.errors]


def test_router_labels_must_be_unique_including_the_protocol_default() -> None:
    assert errors_of("routers:\n- servers: [{port: 1}]\n- servers: [{port: 2}]\n") == [
        "c.yaml:3: routers[1].label: router label 'http' is already used by routers[0]; give each router its own label"
    ]


def test_two_servers_on_one_address_clash() -> None:
    text = (
        "routers:\n- label: a\n  servers: [{port: 4140}]\n"
        "- label: b\n  servers:\n  - port: 4141\n  - ip: 127.0.0.1\n    port: 4140\n"
    )
    assert errors_of(text) == [
        "c.yaml:8: routers[1].servers[1].port: 127.0.0.1:4140 is already used by routers[0].servers[0] (127.0.0.1:4140)"
    ]


def test_wildcard_address_overlaps_every_address_and_admin_counts() -> None:
    text = "admin: {port: 7000}\nrouters:\n- servers: [{ip: 0.0.0.0, port: 7000}]\n"
    assert errors_of(text) == [
        "c.yaml:3: routers[0].servers[0].port: 0.0.0.0:7000 is already used by admin (127.0.0.1:7000)"
    ]


def test_distinct_addresses_and_port_zero_do_not_clash() -> None:
    config = load_config(
        "admin: {port: 0}\nrouters:\n- label: a\n  servers: [{ip: 127.0.0.1, port: 5000}, {port: 0}]\n"
        "- label: b\n  servers: [{ip: 127.0.0.2, port: 5000}, {port: 0}]\n"
    )
    assert len(config.routers) == 2


def test_a_protocol_no_module_registered_is_refused_by_name() -> None:
    # h2 was accepted and served as HTTP/1.1 before the protocol registry (issue 13)
    # (issue 12: a linkerd 1 protocol is named as such)
    assert errors_of("routers:\n- protocol: http\n- protocol: h2\n") == [
        "c.yaml:3: routers[1].protocol: protocol h2 is linkerd 1 configuration that "
        "l5d-twisted does not support yet (the HTTP/2 protocol)"
    ]
    assert errors_of("routers:\n- protocol: spdy\n") == [
        "c.yaml:2: routers[0].protocol: unknown protocol 'spdy'; known protocols: http"
    ]
    config = load_config("routers:\n- protocol: http\n")
    assert [(s.ip, s.port) for s in config.routers[0].servers] == [("127.0.0.1", 4140)]


def test_namer_prefixes_must_be_unique() -> None:
    text = (
        "routers: [{}]\nnamers:\n- kind: io.l5d.fs\n  rootDir: .\n- kind: io.l5d.fs\n  rootDir: .\n"
    )
    assert errors_of(text) == [
        "c.yaml:5: namers[1].prefix: namer prefix /io.l5d.fs is already used by namers[0]; set a distinct prefix"
    ]


def test_namer_prefix_defaults_to_kind_and_accepts_hash_form() -> None:
    config = load_config(
        "routers:\n- dtab: /svc => /#/disco | /#/io.l5d.fs\nnamers:\n- kind: io.l5d.fs\n  rootDir: .\n"
        "- kind: io.l5d.fs\n  prefix: /#/disco\n  rootDir: .\n"
    )
    assert [n.prefix.show() for n in config.namers] == ["/io.l5d.fs", "/disco"]


def test_dtab_sending_to_an_unconfigured_namer_names_the_rule_line() -> None:
    text = (
        "routers:\n"
        "- label: out\n"
        "  dtab: |\n"
        "    /svc => /#/io.l5d.fs;\n"
        "    /svc/x => /#/io.l5d.k8s/default/http/x;\n"
        "namers:\n- kind: io.l5d.fs\n  rootDir: .\n"
    )
    assert errors_of(text) == [
        "c.yaml:5: routers[0].dtab: router 'out' dtab sends to /#/io.l5d.k8s/default/http/x, "
        "but no namer has prefix /io.l5d.k8s (configured: /#/io.l5d.fs)"
    ]


def test_namer_reference_on_the_left_of_a_rule_is_not_a_destination() -> None:
    config = load_config("routers:\n- dtab: /#/nope => /$/inet/127.0.0.1/80\n")
    assert len(config.routers[0].dtab) == 1


def test_namer_references_in_dtab_comments_and_escaped_segments_are_read_as_the_parser_does() -> (
    None
):
    # A commented-out rule is not a reference: the config is valid and must load.
    text = (
        "namers:\n- kind: io.l5d.fs\n  rootDir: .\n"
        "routers:\n- dtab: |\n"
        "    /svc => /#/io.l5d.fs;  # was /#/io.l5d.k8s/default/http\n"
        "    # /svc => /#/io.l5d.consul;\n"
        "    /x => /#/io.l5d.\\x66s/x;\n"
    )
    assert len(load_config(text).routers[0].dtab) == 2
    # ... while a reference right after a rule still counts.
    [error] = errors_of("routers:\n- dtab: /svc=>/a;/x=>/#/nope\n")
    assert "sends to /#/nope" in error
    # Not a namer path: /#/ in the middle of one.
    assert len(load_config("routers:\n- dtab: /svc => /a/#/b\n").routers[0].dtab) == 1
    # A reference is shown as the dtab spells it (escaped), not decoded.
    [error] = errors_of("routers:\n- dtab: /svc => /#/io.l5d.fs\\x2fa\n")
    assert "sends to /#/io.l5d.fs\\x2fa, but no namer has prefix /io.l5d.fs\\x2fa" in error


def test_dtab_syntax_error_is_reported_at_its_line() -> None:
    text = "routers:\n- dtab: |\n    /svc => /a;\n    /x => (( ;\n"
    [error] = errors_of(text)
    assert error.startswith("c.yaml:4: routers[0].dtab: invalid dtab: ")
    assert "'/x => (( ;'" in error


def test_cross_checks_run_alongside_other_errors() -> None:
    text = (
        "routers:\n- label: a\n  bogus: 1\n  servers: [{port: 4140}]\n  dtab: /svc => /#/nope\n"
        "- label: a\n  servers: [{port: 4140}]\n"
    )
    paths = [e.split(": ")[1] for e in errors_of(text)]
    assert paths == [
        "routers[0].bogus",
        "routers[0].dtab",
        "routers[1].label",
        "routers[1].servers[0].port",
    ]


def test_tls_blocks_are_validated() -> None:
    config = load_config(
        "routers:\n- servers:\n"
        "  - tls: {certPath: /c.pem, keyPath: /k.pem, caCertPath: /ca.pem, requireClientAuth: true}\n"
        "  client:\n    tls:\n      commonName: world\n      trustCertsBundle: /ca.pem\n"
        "      clientAuth: {certPath: /c.pem, keyPath: /k.pem}\n"
    )
    server_tls = config.routers[0].servers[0].tls
    assert server_tls is not None and server_tls.require_client_auth
    errors = errors_of(
        "routers:\n- servers:\n  - tls: {certPath: /c.pem, requireClientAuth: true}\n"
        "  client:\n    tls: {commonName: x, clientAuth: {certPath: /c.pem}}\n"
    )
    assert errors == [
        "c.yaml:3: routers[0].servers[0].tls: missing required key 'keyPath'",
        "c.yaml:5: routers[0].client.tls.clientAuth: missing required key 'keyPath'",
    ]
    assert errors_of(
        "routers:\n- servers:\n  - tls: {certPath: /c.pem, keyPath: /k.pem, requireClientAuth: true}\n"
    ) == [
        "c.yaml:3: routers[0].servers[0].tls: requireClientAuth needs caCertPath "
        "(the CA to check client certificates against)"
    ]


def test_router_experimental_is_linkerd_1s_boolean_defaulting_to_false() -> None:
    """linkerd 1 accepts `experimental: true` on every router; it used to be an unknown key."""
    config = load_config(
        "routers:\n- label: a\n  experimental: true\n  servers: [{port: 1}]\n"
        "- label: b\n  experimental: false\n  servers: [{port: 2}]\n"
        "- label: c\n  servers: [{port: 3}]\n"
    )
    assert [r.experimental for r in config.routers] == [True, False, False]
    assert errors_of("routers:\n- experimental: sometimes\n") == [
        'c.yaml:2: routers[0].experimental: expected true or false, got "sometimes"'
    ]
