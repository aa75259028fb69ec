"""TLS settings: validated here, used by the HTTP layer when it speaks TLS."""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob

# linkerd 1's protocol names (the JVM's); l5d-twisted only ever enables the last two
TLS_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
ENABLED_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
PROTOCOLS_DOC = (
    "TLS versions to enable, of TLSv1.2 and TLSv1.3 (TLSv1 and TLSv1.1 are accepted and"
    " never enabled); default both"
)


def check_protocols(values: tuple[str, ...]) -> None:
    """linkerd 1's ``protocols`` list: known names, at least one version spoken here."""
    for value in values:
        if value not in TLS_PROTOCOLS:
            raise ValueError(f"unknown TLS protocol {value!r}; known: {', '.join(TLS_PROTOCOLS)}")
    if values and not any(v in ENABLED_PROTOCOLS for v in values):
        raise ValueError(
            f"protocols {', '.join(values)}: l5d-twisted speaks only TLSv1.2 and TLSv1.3"
            " (older versions are insecure); list at least one of them"
        )


@dataclass(frozen=True)
class ClientAuthConfig:
    cert_path: str = knob(doc="client certificate (PEM)")
    key_path: str = knob(doc="its private key (PEM)")
    intermediate_certs_path: str | None = knob(
        None, doc="intermediate CA certificates (PEM) sent after the client certificate"
    )


@dataclass(frozen=True)
class ClientTlsConfig:
    """``client.tls``: originate TLS; ``commonName`` may use the prefix's ``{captures}``.

    Per prefix (``io.l5d.static``) the last matching config's ``tls`` replaces the whole
    block, as in linkerd 1: ``tls: {enabled: false}`` under a narrower prefix turns off the
    TLS a broader one turned on.
    """

    enabled: bool = knob(
        True, doc="false: plain TCP to these endpoints (overrides a broader prefix's tls)"
    )
    common_name: str | None = knob(None, doc="name the server certificate must have")
    disable_validation: bool = knob(False, doc="accept any server certificate (testing only)")
    trust_certs_bundle: str | None = knob(
        None, doc="CA certificates (PEM) to trust instead of the system's"
    )
    trust_certs: tuple[str, ...] = knob(
        (),
        doc="deprecated form of trustCertsBundle: CA certificate files, trusted together;"
        " not with trustCertsBundle (linkerd 1 refused both as well)",
    )
    client_auth: ClientAuthConfig | None = knob(None, doc="present a client certificate")
    protocols: tuple[str, ...] = knob((), validator=check_protocols, doc=PROTOCOLS_DOC)

    def __post_init__(self) -> None:
        if self.trust_certs and self.trust_certs_bundle is not None:
            # linkerd 1 (TlsClientConfig): "Both trustCerts and trustCertsBundle have been
            # set. Please use only trustCertsBundle."
            raise ValueError(
                "trustCerts and trustCertsBundle are both set; use only trustCertsBundle"
                " (trustCerts is deprecated; linkerd 1 refused both together as well)"
            )
        if self.enabled and self.common_name is None and not self.disable_validation:
            raise ValueError(
                "tls needs commonName (the name to validate) or disableValidation: true"
            )


@dataclass(frozen=True)
class ServerTlsConfig:
    """``servers[].tls``: terminate TLS."""

    cert_path: str = knob(doc="server certificate (PEM)")
    key_path: str = knob(doc="its private key (PEM)")
    intermediate_certs_path: str | None = knob(
        None, doc="intermediate CA certificates (PEM) sent after the server certificate"
    )
    ca_cert_path: str | None = knob(
        None, doc="CA that client certificates must chain to (used with requireClientAuth)"
    )
    require_client_auth: bool = knob(
        False, doc="ask for a client certificate and reject clients without a valid one"
    )
    protocols: tuple[str, ...] = knob((), validator=check_protocols, doc=PROTOCOLS_DOC)

    def __post_init__(self) -> None:
        if self.require_client_auth and self.ca_cert_path is None:
            # linkerd 1 then checked client certificates against the JVM's public CAs,
            # which any certificate a public CA issued would pass: refused here.
            raise ValueError(
                "requireClientAuth needs caCertPath (the CA to check client certificates against)"
            )
