"""TLS for the HTTP wire: options built from the config's ``tls`` blocks.

* ``server_tls(config: ServerTlsConfig)`` -> the options ``ServerSettings(tls=...)`` takes:
  ``serve_http`` then listens with TLS, sending ``intermediateCertsPath`` after its
  certificate.  ``requireClientAuth`` + ``caCertPath`` demand a client certificate signed
  by that CA (the admin server takes the same options for ``admin.tls``).
* ``client_tls(config: ClientTlsConfig, common_name=None)`` -> the connection creator
  ``EndpointClient(..., tls=...)`` takes: connections are TLS, the server certificate is
  validated against ``commonName`` (after the router substituted its ``{captures}``; pass
  it as ``common_name``) and ``trustCertsBundle`` or the deprecated ``trustCerts`` list
  (else the system's CAs), or not at all with ``disableValidation``; ``clientAuth``
  presents a certificate (and its ``intermediateCertsPath`` chain).  ``enabled: false``
  gives None: plain TCP.

* ``tls_server_factory(options, factory, accepts)`` -> ``factory`` behind TLS, refusing a
  connection before any handshake when ``accepts()`` says no (``serve_http`` uses it).
* ``is_tls_failure(error)``: a failed handshake or certificate check.

Both sides speak TLS 1.2 and 1.3 only; linkerd 1's ``protocols`` list narrows that to one
of them.

Files are read when the options are built, so a bad path is a clear ``TlsConfigError`` at
start-up rather than a failed handshake per request.

Importing this module is cheap: pyOpenSSL, cryptography, service_identity and Twisted's TLS
modules (~10-13 MB of a ~40 MB process) are imported by these functions, i.e. only once a
config asks for TLS.  ``l5d_twisted.lean`` keeps them out of a process whose config has no
TLS at all, which Twisted would otherwise import for every TCP connection's benefit.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from l5d_twisted.config.tls import ClientTlsConfig, ServerTlsConfig

if TYPE_CHECKING:
    from twisted.internet import ssl


class TlsConfigError(Exception):
    """A certificate or key could not be read or does not fit."""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TlsConfigError(f"cannot read {what} {path}: {e.strerror or e}") from e


def _certificates(pem: bytes, path: str) -> list[ssl.Certificate]:
    """Every certificate in a PEM bundle."""
    from twisted.internet import ssl

    marker = b"-----END CERTIFICATE-----"
    certs = []
    for block in pem.split(marker):
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start < 0:
            continue
        try:
            certs.append(ssl.Certificate.loadPEM(block[start:] + marker + b"\n"))
        except Exception as e:
            raise TlsConfigError(f"bad certificate in {path}: {e}") from e
    if not certs:
        raise TlsConfigError(f"no certificate in {path}")
    return certs


def _private_certificate(
    cert_path: str, key_path: str
) -> tuple[ssl.PrivateCertificate, list[ssl.Certificate]]:
    from OpenSSL import crypto
    from twisted.internet import ssl

    chain = _certificates(_read(cert_path, "certificate"), cert_path)
    key_pem = _read(key_path, "private key")
    try:
        key = ssl.KeyPair.load(key_pem, crypto.FILETYPE_PEM)
        private = ssl.PrivateCertificate.fromCertificateAndKeyPair(chain[0], key)  # type: ignore[no-untyped-call]
    except Exception as e:
        raise TlsConfigError(f"key {key_path} does not fit certificate {cert_path}: {e}") from e
    return private, chain[1:]


def server_tls(config: ServerTlsConfig) -> Any:
    """Options of a TLS server: its certificate, then the rest of ``certPath`` and the
    certificates of ``intermediateCertsPath`` as its chain.  Client certificates are asked
    for only with ``requireClientAuth`` (then required, and checked against
    ``caCertPath``); without it ``caCertPath`` is unused, as in linkerd 1 (``ClientAuth.Off``)."""
    from twisted.internet import ssl

    private, extra_chain = _private_certificate(config.cert_path, config.key_path)
    extra_chain += _intermediates(config.intermediate_certs_path)
    ca_certs = None
    if config.require_client_auth and config.ca_cert_path is not None:
        ca_certs = [
            c.original
            for c in _certificates(
                _read(config.ca_cert_path, "CA certificate"), config.ca_cert_path
            )
        ]
    return ssl.CertificateOptions(
        privateKey=private.privateKey.original.to_cryptography_key(),
        certificate=private.original.to_cryptography(),
        extraCertChain=_chain(extra_chain),
        verify=ca_certs is not None,
        caCerts=ca_certs,
        requireCertificate=ca_certs is not None,
        **_versions(config.protocols),
        # answer ALPN offers (curl, browsers) with what we speak; without it the
        # handshake of an ALPN-offering client ends in an internal_error alert
        acceptableProtocols=[b"http/1.1"],
    )


def _versions(protocols: tuple[str, ...]) -> dict[str, Any]:
    """``CertificateOptions`` bounds of linkerd 1's ``protocols`` list: TLS 1.2 and 1.3 by
    default; a list enables the ones of these two it names (older ones never)."""
    from twisted.internet import ssl

    v12, v13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
    if protocols and "TLSv1.2" not in protocols:
        return {"raiseMinimumTo": v13}
    if protocols and "TLSv1.3" not in protocols:
        return {"raiseMinimumTo": v12, "lowerMaximumSecurityTo": v12}
    return {"raiseMinimumTo": v12}


def _intermediates(path: str | None) -> list[ssl.Certificate]:
    """The certificates of an ``intermediateCertsPath`` (none without one)."""
    return [] if path is None else _certificates(_read(path, "intermediate certificates"), path)


def _chain(certs: list[ssl.Certificate]) -> Any:
    """Certificates as ``CertificateOptions(extraCertChain=...)`` takes them."""
    return [c.original.to_cryptography() for c in certs] or None


def client_tls(config: ClientTlsConfig, common_name: str | None = None) -> Any:
    """The connection creator of ``config``; None when it says ``enabled: false`` (plain
    TCP, as linkerd 1's ``ClientSsl(None)``), without importing any TLS module."""
    if not config.enabled:
        return None
    from twisted.internet import ssl

    client_cert = None
    chain: list[ssl.Certificate] = []
    if config.client_auth is not None:
        client_cert, chain = _private_certificate(
            config.client_auth.cert_path, config.client_auth.key_path
        )
        chain += _intermediates(config.client_auth.intermediate_certs_path)
    if config.disable_validation:
        kwargs: dict[str, Any] = {"verify": False, **_versions(config.protocols)}
        if client_cert is not None:
            kwargs.update(
                privateKey=client_cert.privateKey.original.to_cryptography_key(),
                certificate=client_cert.original.to_cryptography(),
                extraCertChain=_chain(chain),
            )
        return ssl.CertificateOptions(**kwargs)
    name = common_name or config.common_name
    if not name:
        raise TlsConfigError("client TLS needs a commonName to validate, or disableValidation")
    trusted: list[ssl.Certificate] = []
    if config.trust_certs_bundle is not None:
        trusted = _certificates(
            _read(config.trust_certs_bundle, "trust bundle"), config.trust_certs_bundle
        )
    for path in config.trust_certs:  # the deprecated list: every file's certificates together
        trusted += _certificates(_read(path, "trusted CA certificate"), path)
    trust: Any = None
    if trusted:
        trust = ssl.trustRootFromCertificates(trusted)  # type: ignore[no-untyped-call]
    extra = _versions(config.protocols)
    if chain:
        extra["extraCertChain"] = _chain(chain)
    return ssl.optionsForClientTLS(
        name,
        trustRoot=trust,
        clientCertificate=client_cert,
        acceptableProtocols=[b"http/1.1"],
        extraCertificateOptions=extra,
    )


def tls_server_factory(options: Any, factory: Any, accepts: Callable[[], bool]) -> Any:
    """``factory`` (an HTTP server's) behind TLS with ``options`` (from :func:`server_tls`);
    a connection ``accepts()`` refuses is closed before any handshake (nothing allocated)."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    class TlsServerFactory(TLSMemoryBIOFactory):
        def buildProtocol(self, addr: Any) -> Any:
            if not accepts():
                return None
            return super().buildProtocol(addr)

    return TlsServerFactory(options, False, factory)


def is_tls_failure(error: object) -> bool:
    """Whether ``error`` is a failed TLS handshake or certificate check (pyOpenSSL's
    ``SSL.Error``, service_identity's errors): no TLS connection, no import."""
    if sys.modules.get("OpenSSL.SSL") is None:
        return False  # TLS was never loaded, so no connection of this process is TLS
    from OpenSSL import SSL
    from service_identity import CertificateError, VerificationError

    return isinstance(error, SSL.Error | VerificationError | CertificateError)
