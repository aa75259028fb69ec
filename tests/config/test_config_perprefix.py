"""client/service blocks: io.l5d.global, io.l5d.static with prefixes, captures, merging."""

from __future__ import annotations

import pytest

from l5d_twisted.config import ConfigErrors, PrefixPattern, load_config
from l5d_twisted.config.params import ClientParams, ServiceParams
from l5d_twisted.naming.path import Path

P = Path.read


def router(block: str) -> str:
    return "routers:\n- protocol: http\n" + "".join(
        "  " + line + "\n" for line in block.strip("\n").splitlines()
    )


def test_global_block_applies_to_every_name() -> None:
    config = load_config(
        router(
            "client:\n  connectTimeoutMs: 250\n  failFast: true\nservice:\n  totalTimeoutMs: 900\n"
        )
    )
    r = config.routers[0]
    for bound in ("/#/io.l5d.fs/a", "/%/io.l5d.port/4141/#/io.l5d.fs/b"):
        params = r.client.params_for(P(bound))
        assert (params.connect_timeout_ms, params.fail_fast) == (250, True)
        assert params.load_balancer.kind == "p2c"  # untouched keys keep their defaults
    assert r.service.params_for(P("/svc/x")).total_timeout_ms == 900
    assert r.client.kind == "io.l5d.global"


def test_explicit_global_kind_is_the_same_as_none() -> None:
    a = load_config(router("client:\n  kind: io.l5d.global\n  failFast: true\n"))
    b = load_config(router("client:\n  failFast: true\n"))
    assert a.routers[0].client == b.routers[0].client


def test_static_configs_merge_key_by_key_later_matches_win() -> None:
    config = load_config(
        router(
            """
client:
  kind: io.l5d.static
  configs:
  - prefix: /
    connectTimeoutMs: 100
    loadBalancer: {kind: roundRobin}
  - prefix: /#/io.l5d.fs/*
    connectTimeoutMs: 200
  - prefix: /#/io.l5d.fs/special
    failFast: true
    connectTimeoutMs: 300
"""
        )
    )
    client = config.routers[0].client
    special = client.params_for(P("/#/io.l5d.fs/special"))
    assert (special.connect_timeout_ms, special.fail_fast, special.load_balancer.kind) == (
        300,
        True,
        "roundRobin",
    )
    other = client.params_for(P("/#/io.l5d.fs/other/extra"))
    assert (other.connect_timeout_ms, other.fail_fast, other.load_balancer.kind) == (
        200,
        False,
        "roundRobin",
    )
    elsewhere = client.params_for(P("/$/inet/127.0.0.1/80"))
    assert (elsewhere.connect_timeout_ms, elsewhere.load_balancer.kind) == (100, "roundRobin")


def test_no_matching_prefix_gives_defaults() -> None:
    config = load_config(
        router(
            "service:\n  kind: io.l5d.static\n  configs:\n  - prefix: /svc/a\n    totalTimeoutMs: 5\n"
        )
    )
    service = config.routers[0].service
    assert service.params_for(P("/svc/a/b")).total_timeout_ms == 5
    assert service.params_for(P("/svc/ab")) == ServiceParams()
    assert service.params_for(P("/svc")) == ServiceParams()


def test_captures_are_substituted_into_strings_they_set() -> None:
    config = load_config(
        router(
            """
client:
  kind: io.l5d.static
  configs:
  - prefix: /#/io.l5d.k8s/{namespace}/*/{service}
    tls:
      commonName: "{service}.{namespace}.svc.cluster.local"
      trustCertsBundle: /certs/{namespace}.pem
"""
        )
    )
    tls = config.routers[0].client.params_for(P("/#/io.l5d.k8s/prod/http/world")).tls
    assert tls is not None
    assert tls.common_name == "world.prod.svc.cluster.local"
    assert tls.trust_certs_bundle == "/certs/prod.pem"
    assert config.routers[0].client.params_for(P("/#/io.l5d.fs/world")).tls is None


def test_nested_blocks_are_replaced_whole_like_linkerd_params() -> None:
    config = load_config(
        router(
            """
client:
  kind: io.l5d.static
  configs:
  - prefix: /
    hostConnectionPool: {maxSize: 10, minSize: 2}
  - prefix: /#/a
    hostConnectionPool: {idleTimeMs: 5}
"""
        )
    )
    pool = config.routers[0].client.params_for(P("/#/a")).host_connection_pool
    assert (pool.min_size, pool.max_size, pool.idle_time_ms) == (0, None, 5)


def test_service_retries_and_classifier() -> None:
    config = load_config(
        router(
            """
service:
  kind: io.l5d.static
  configs:
  - prefix: /svc
    retries:
      budget: {minRetriesPerSec: 3, percentCanRetry: 0.5, ttlSecs: 20}
      backoff: {kind: jittered, minMs: 10, maxMs: 20}
  - prefix: /svc/read
    responseClassifier: {kind: io.l5d.http.retryableRead5XX}
"""
        )
    )
    params = config.routers[0].service.params_for(P("/svc/read"))
    assert (
        params.retries.budget.min_retries_per_sec,
        params.retries.budget.percent_can_retry,
        params.retries.budget.ttl_secs,
    ) == (3, 0.5, 20)
    assert params.retries.backoff.kind == "jittered"
    assert params.response_classifier.kind == "io.l5d.http.retryableRead5XX"


def test_default_blocks_resolve_to_defaults() -> None:
    r = load_config(router("label: x\n")).routers[0]
    assert r.client.params_for(P("/#/x")) == ClientParams()
    assert r.service.params_for(P("/svc/x")) == ServiceParams()


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "client:\n  kind: io.l5d.statik\n",
            "routers[0].client.kind: unknown client kind 'io.l5d.statik' (did you mean 'io.l5d.static'?)",
        ),
        ("client:\n  kind: io.l5d.static\n", "routers[0].client: missing required key 'configs'"),
        (
            "client:\n  kind: io.l5d.static\n  configs:\n  - failFast: true\n",
            "routers[0].client.configs[0]: missing required key 'prefix'",
        ),
        (
            "client:\n  kind: io.l5d.static\n  failFast: true\n  configs: []\n",
            "routers[0].client.failFast: unknown key 'failFast' (with io.l5d.static, params go in configs[]",
        ),
        (
            "client:\n  kind: io.l5d.static\n  configs:\n  - prefix: svc\n",
            "routers[0].client.configs[0].prefix: prefix must start with '/'",
        ),
        (
            "client:\n  kind: io.l5d.static\n  configs:\n  - prefix: /a/{x}/{x}\n",
            "routers[0].client.configs[0].prefix: capture {x} appears twice",
        ),
        (
            "client:\n  loadBalancer: p2c\n",
            'routers[0].client.loadBalancer: expected a mapping like {kind: p2c}, got "p2c"',
        ),
        ("client:\n  tls: {}\n", "routers[0].client.tls: tls needs commonName"),
        (
            "client:\n  hostConnectionPool: {minSize: 5, maxSize: 2}\n",
            "routers[0].client.hostConnectionPool: minSize (5) is larger than maxSize (2)",
        ),
        (
            "client:\n  loadBalancer: {kind: p2c, maxEfort: 2}\n",
            "routers[0].client.loadBalancer.maxEfort: unknown key 'maxEfort' (did you mean 'maxEffort'?)",
        ),
        (
            "service:\n  retries:\n    budget: {percentCanRetry: -1}\n",
            "routers[0].service.retries.budget.percentCanRetry: expected a number",
        ),
    ],
)
def test_bad_blocks(block: str, expected: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(router(block))
    assert any(expected in str(e) for e in info.value.errors), str(info.value)


def test_bad_prefix_and_bad_params_are_both_reported() -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(
            router(
                "service:\n  kind: io.l5d.static\n  configs:\n  - prefix: /svc/{x\n    totalTimeoutMs: -3\n"
            )
        )
    assert [e.path for e in info.value.errors] == [
        "routers[0].service.configs[0].prefix",
        "routers[0].service.configs[0].totalTimeoutMs",
    ]


@pytest.mark.parametrize(
    ("pattern", "path", "captures"),
    [
        ("/", "/a/b", {}),
        ("/svc", "/svc", {}),
        ("/svc", "/svc/a", {}),
        ("/svc", "/sv", None),
        ("/svc/*", "/svc", None),
        ("/svc/*/x", "/svc/anything/x/more", {}),
        ("/svc/{name}", "/svc/hello", {"name": "hello"}),
        ("/svc/{name}.prod", "/svc/hello.prod", {"name": "hello"}),
        ("/svc/{name}.prod", "/svc/hello.dev", None),
        ("/#/io.l5d.fs/world-*", "/#/io.l5d.fs/world-v1", {}),
        (
            "/%/io.l5d.port/{port}/#/{namer}",
            "/%/io.l5d.port/4141/#/io.l5d.fs/x",
            {"port": "4141", "namer": "io.l5d.fs"},
        ),
    ],
)
def test_prefix_patterns(pattern: str, path: str, captures: dict[str, str] | None) -> None:
    assert PrefixPattern.read(pattern).match(P(path)) == captures
