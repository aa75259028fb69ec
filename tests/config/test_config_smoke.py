"""The first things the mesh relies on: a minimal config loads with linkerd's defaults."""

from __future__ import annotations

import pytest

from l5d_twisted.config import ConfigErrors, load_config
from l5d_twisted.naming.path import Path


def test_minimal_config_gets_linkerd_defaults() -> None:
    config = load_config("routers:\n- protocol: http\n")
    router = config.routers[0]
    assert router.label == "http"
    assert [(s.ip, s.port) for s in router.servers] == [("127.0.0.1", 4140)]
    assert router.dst_prefix == Path.read("/svc")
    assert [spec.kind for spec in router.identifier] == ["io.l5d.header.token"]
    assert router.binding_timeout_ms == 10_000
    assert (config.admin.ip, config.admin.port, config.admin.shutdown_grace_ms) == (
        "127.0.0.1",
        9990,
        10_000,
    )
    client = router.client.params_for(Path.read("/#/io.l5d.fs/world"))
    assert client.load_balancer.kind == "p2c"
    assert client.failure_accrual.kind == "io.l5d.consecutiveFailures"
    service = router.service.params_for(Path.read("/svc/world"))
    assert service.response_classifier.kind == "io.l5d.http.nonRetryable5XX"
    assert service.retries.budget.percent_can_retry == 0.2


def test_bad_port_is_reported_with_line_and_path() -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config("routers:\n- servers:\n  - port: 1\n  - port: abc\n", "config.yaml")
    assert (
        str(info.value)
        == 'config.yaml:4: routers[0].servers[1].port: expected an integer 0-65535, got "abc"'
    )
    [error] = info.value.errors
    assert (error.path, error.line) == ("routers[0].servers[1].port", 4)
