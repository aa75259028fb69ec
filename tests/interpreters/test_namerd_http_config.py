"""``interpreter: io.l5d.namerd.http`` in a config: linkerd 1's keys and defaults, its
experimental switch, and the namerd interpreters refused by name."""

from __future__ import annotations

import pytest

from l5d_twisted.config.errors import ConfigErrors
from l5d_twisted.config.loader import load_config
from l5d_twisted.naming.path import Path

REFUSAL = "is linkerd 1 configuration that l5d-twisted does not support yet"


def router(interpreter: str) -> str:
    return f"routers:\n- protocol: http\n  interpreter:\n{interpreter}  servers: [{{port: 4140}}]\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as raised:
        load_config(text)
    return [str(p) for p in raised.value.errors]


def test_linkerd_1s_example_config_loads_with_its_defaults() -> None:
    # linkerd/examples/namerd-http.yaml, as published
    config = load_config(
        router(
            "    kind: io.l5d.namerd.http\n    experimental: true\n"
            "    dst: /$/inet/localhost/4180\n    namespace: default\n"
        )
    )
    interpreter = config.routers[0].interpreter
    assert interpreter.kind == "io.l5d.namerd.http"
    assert interpreter.dst == Path.read("/$/inet/localhost/4180")
    assert (interpreter.retry.base_seconds, interpreter.retry.max_seconds) == (5.0, 600.0)
    retried = (
        load_config(
            router(
                "    kind: io.l5d.namerd.http\n    experimental: true\n    dst: /$/inet/n/4180\n"
                "    namespace: prod\n    retry: {baseSeconds: 1, maxSeconds: 30}\n"
            )
        )
        .routers[0]
        .interpreter
    )
    assert (retried.namespace, retried.retry.base_seconds, retried.retry.max_seconds) == (
        "prod",
        1.0,
        30.0,
    )
    tls = (
        load_config(
            router(
                "    kind: io.l5d.namerd.http\n    experimental: true\n    dst: /$/inet/n/4180\n"
                "    tls: {commonName: namerd.mesh, trustCertsBundle: /ca.pem}\n"
            )
        )
        .routers[0]
        .interpreter.tls
    )
    assert tls is not None and (tls.common_name, tls.trust_certs_bundle) == (
        "namerd.mesh",
        "/ca.pem",
    )


@pytest.mark.parametrize(
    ("interpreter", "expected"),
    [
        (
            "    kind: io.l5d.namerd.http\n    dst: /$/inet/n/4180\n",
            "routers[0].interpreter: the io.l5d.namerd.http interpreter is experimental (as in "
            "linkerd 1) and must be explicitly enabled by setting 'experimental: true'",
        ),
        (
            "    kind: io.l5d.namerd.http\n    experimental: true\n",
            "routers[0].interpreter: missing required key 'dst'",
        ),
        (
            "    kind: io.l5d.namerd.http\n    experimental: true\n    dst: /$/inet/n/4180\n"
            "    retry: {baseSeconds: 60, maxSeconds: 5}\n",
            "routers[0].interpreter.retry: baseSeconds is larger than maxSeconds",
        ),
        (
            "    kind: io.l5d.namerd.http\n    experimental: true\n    dst: /$/inet/n/4180\n"
            "    tls: {trustCertsBundle: /ca.pem}\n",
            "tls needs commonName (the name to validate) or disableValidation: true",
        ),
        (
            "    kind: default\n    tls: {commonName: namerd}\n",
            "routers[0].interpreter.tls: tls is a key of the io.l5d.namerd.http interpreter",
        ),
        (
            "    kind: default\n    dst: /$/inet/n/4180\n",
            "routers[0].interpreter.dst: dst is a key of the io.l5d.namerd.http interpreter, "
            "not of default",
        ),
        (
            "    kind: io.l5d.namerd\n    dst: /$/inet/n/4100\n",
            f"routers[0].interpreter.kind: interpreter kind io.l5d.namerd {REFUSAL} "
            "(the namerd thrift interpreter)",
        ),
        (
            "    kind: io.l5d.mesh\n    dst: /$/inet/n/4321\n    experimental: true\n",
            f"routers[0].interpreter.kind: interpreter kind io.l5d.mesh {REFUSAL} "
            "(the namerd mesh (gRPC) interpreter)",
        ),
    ],
)
def test_refused_with_the_reason(interpreter: str, expected: str) -> None:
    found = problems(router(interpreter))
    assert any(expected in p for p in found), found
