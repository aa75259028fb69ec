"""In-cluster access: HTTPS to the API with the service account's CA and bearer token.

linkerd 1 needed a kubectl proxy sidecar; here the namer can talk to the API server
itself.  A throwaway CA signs a certificate for 127.0.0.1, the fake API requires the
token, and the namer must resolve names through it.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path as FsPath
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from k8s_fake_api import FakeApi, endpoint
from k8s_watch_helpers import Watched, eventually
from twisted.internet import reactor, ssl

from l5d_twisted.context import PluginContext
from l5d_twisted.k8s.access import resolve_access
from l5d_twisted.k8s.api import KubernetesApi
from l5d_twisted.k8s.namer import K8sNamer
from l5d_twisted.k8s.watcher import WatchSettings
from l5d_twisted.naming.path import Path

# pyOpenSSL deprecates the X509 objects Twisted's CertificateOptions still passes it.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: FsPath) -> ssl.CertificateOptions:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test-ca", ca_key, "test-ca", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("kubernetes", key, "test-ca", ca_key, ca=False)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "token").write_text("s3cret-token\n")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server_cert = ssl.PrivateCertificate.loadPEM(
        key_pem + cert.public_bytes(serialization.Encoding.PEM)
    )
    return server_cert.options()


@pytest_twisted.ensureDeferred
async def test_in_cluster_https_with_token_and_ca(tmp_path: FsPath) -> None:
    api = FakeApi()
    api.required_token = "s3cret-token"
    port = api.listen(tls=make_pki(tmp_path))
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}
    access = resolve_access(None, None, env, sa_dir=str(tmp_path))
    assert access.base_url == f"https://127.0.0.1:{port}"
    k8s = KubernetesApi(reactor, access, request_timeout_s=2.0)
    settings = WatchSettings(
        watch_timeout_s=60, idle_timeout_s=5.0, resync_s=0, backoff_base_s=0.05, backoff_max_s=0.4
    )
    namer = K8sNamer(
        k8s, Path.read("/io.l5d.k8s"), reactor, PluginContext(reactor), settings=settings
    )
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")])
        web = Watched(namer, "/default/http/web")
        await eventually(lambda: web.shows("10.0.0.1:8080"), what="list over HTTPS with the token")
        api.set_service("default", "web", [endpoint("10.0.0.2")])
        await eventually(lambda: web.shows("10.0.0.2:8080"), what="watch over HTTPS")
        # a rotated token is picked up: the old one is refused, the new file is read
        api.required_token = "rotated"
        (tmp_path / "token").write_text("rotated")
        api.drop_watches()
        api.set_service("default", "web", [endpoint("10.0.0.3")])
        await eventually(lambda: web.shows("10.0.0.3:8080"), what="rotated token")
    finally:
        namer.close()
        await api.stop()


@pytest_twisted.ensureDeferred
async def test_wrong_ca_is_refused_and_endpoints_stay_pending(tmp_path: FsPath) -> None:
    api = FakeApi()
    port = api.listen(tls=make_pki(tmp_path))
    other = tmp_path / "other"
    other.mkdir()
    make_pki(other)  # a different CA: the server's certificate must not be trusted
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}
    k8s = KubernetesApi(
        reactor, resolve_access(None, None, env, sa_dir=str(other)), request_timeout_s=2.0
    )
    settings = WatchSettings(
        watch_timeout_s=60, idle_timeout_s=5.0, resync_s=0, backoff_base_s=0.05, backoff_max_s=0.4
    )
    namer = K8sNamer(
        k8s, Path.read("/io.l5d.k8s"), reactor, PluginContext(reactor), settings=settings
    )
    try:
        api.set_service("default", "web", [endpoint("10.0.0.1")])
        web = Watched(namer, "/default/http/web")
        await eventually(
            lambda: namer.state()["namespaces"]["default"]["lastError"], what="TLS failure recorded"
        )
        assert web.current() is None and not namer.state()["namespaces"]["default"]["synced"]
        assert not api.requests  # nothing was sent to the untrusted server
    finally:
        namer.close()
        await api.stop()
