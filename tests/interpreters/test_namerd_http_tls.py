"""io.l5d.namerd.http with ``tls``: the watches go to namerd over TLS, checked against the
tls block's commonName and trust bundle (a fake namerd on loopback behind a test CA)."""

from __future__ import annotations

from pathlib import Path as FilePath

import pytest_twisted
from l5d_pki import make_pki
from namerd_fake import FakeNamerd
from test_namerd_interpreter_fake import leaf, until
from twisted.internet import reactor, ssl

from l5d_twisted.config.model import InterpreterConfig
from l5d_twisted.config.tls import ClientTlsConfig
from l5d_twisted.interpreters import build_interpreter
from l5d_twisted.naming.dtab import Dtab
from l5d_twisted.naming.path import Path
from l5d_twisted.naming.var import Ok, State
from l5d_twisted.telemetry.metrics import MetricsTree
from l5d_twisted.telemetry.metrics_json import flat_metrics


def server_options(pki: dict[str, str]) -> ssl.CertificateOptions:
    pem = FilePath(pki["server_crt"]).read_bytes() + FilePath(pki["server_key"]).read_bytes()
    options: ssl.CertificateOptions = ssl.PrivateCertificate.loadPEM(pem).options()
    return options


async def bind_over_tls(tmp_path: FilePath, common_name: str) -> tuple[list[State], float]:
    pki = make_pki(tmp_path, server_name="namerd.mesh")
    fake = FakeNamerd()
    fake.set("bind", leaf("/#/io.l5d.fs/world"))
    port = fake.listen_tls(server_options(pki))
    metrics = MetricsTree(reactor)
    config = InterpreterConfig(
        kind="io.l5d.namerd.http",
        experimental=True,
        dst=Path.read(f"/$/inet/127.0.0.1/{port}"),
        tls=ClientTlsConfig(common_name=common_name, trust_certs_bundle=pki["ca"]),
    )
    interpreter, close = build_interpreter(
        config, {}, (), reactor, metrics.stats.scope("rt", "out")
    )
    states: list[State] = []
    watch = interpreter.bind(Dtab.empty(), Path.read("/svc/world")).observe(states.append)
    scope = "rt/out/interpreter/io.l5d.namerd.http/"
    try:
        await until(
            lambda: (
                any(isinstance(s, Ok) for s in states)
                or flat_metrics(metrics).get(scope + "failures", 0) >= 1
            ),
            "a tree or a failure",
        )
        return states, flat_metrics(metrics).get(scope + "failures", 0)
    finally:
        watch.close()
        assert close is not None
        close()
        metrics.stop()
        await fake.stop()


@pytest_twisted.ensureDeferred
async def test_the_watches_go_to_namerd_over_tls(tmp_path: FilePath) -> None:
    states, failures = await bind_over_tls(tmp_path, "namerd.mesh")
    assert failures == 0
    assert isinstance(states[-1], Ok)
    assert states[-1].value.value.id.show() == "/#/io.l5d.fs/world"


@pytest_twisted.ensureDeferred
async def test_a_namerd_without_the_common_names_certificate_is_not_trusted(
    tmp_path: FilePath,
) -> None:
    states, failures = await bind_over_tls(tmp_path, "other.mesh")
    assert failures >= 1
    assert not any(isinstance(s, Ok) for s in states)
