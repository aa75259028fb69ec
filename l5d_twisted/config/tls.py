"""TLS settings: validated here, used by the HTTP layer when it speaks TLS."""

from __future__ import annotations

from dataclasses import dataclass

from l5d_twisted.config.schema import knob


@dataclass(frozen=True)
class ClientAuthConfig:
    cert_path: str = knob(doc="client certificate (PEM)")
    key_path: str = knob(doc="its private key (PEM)")


@dataclass(frozen=True)
class ClientTlsConfig:
    """``client.tls``: originate TLS; ``commonName`` may use the prefix's ``{captures}``."""

    common_name: str | None = knob(None, doc="name the server certificate must have")
    disable_validation: bool = knob(False, doc="accept any server certificate (testing only)")
    trust_certs_bundle: str | None = knob(
        None, doc="CA certificates (PEM) to trust instead of the system's"
    )
    client_auth: ClientAuthConfig | None = knob(None, doc="present a client certificate")

    def __post_init__(self) -> None:
        if self.common_name is None and not self.disable_validation:
            raise ValueError(
                "tls needs commonName (the name to validate) or disableValidation: true"
            )


@dataclass(frozen=True)
class ServerTlsConfig:
    """``servers[].tls``: terminate TLS."""

    cert_path: str = knob(doc="server certificate (PEM)")
    key_path: str = knob(doc="its private key (PEM)")
    ca_cert_path: str | None = knob(None, doc="CA that client certificates must chain to")
    require_client_auth: bool = knob(False, doc="reject clients without a valid certificate")

    def __post_init__(self) -> None:
        if self.require_client_auth and self.ca_cert_path is None:
            raise ValueError(
                "requireClientAuth needs caCertPath (the CA to check client certificates against)"
            )
