"""Throwaway certificates for TLS tests: a CA, a server and a client certificate."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: Any) -> tuple[str, str]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def _issue(
    ca_cert: x509.Certificate, ca_key: Any, cn: str, sans: list[x509.GeneralName]
) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def make_pki(tmp: Path, server_name: str = "hello.mesh") -> dict[str, str]:
    """Files: ``ca``, ``server_crt``/``server_key`` (for ``server_name`` and 127.0.0.1),
    ``client_crt``/``client_key``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("test ca"))
        .issuer_name(_name("test ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, _ = _write(tmp / "ca", ca_cert, ca_key)
    server_cert, server_key = _issue(
        ca_cert,
        ca_key,
        server_name,
        [x509.DNSName(server_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    server_crt, server_key_path = _write(tmp / "server", server_cert, server_key)
    client_cert, client_key = _issue(ca_cert, ca_key, "client", [x509.DNSName("client")])
    client_crt, client_key_path = _write(tmp / "client", client_cert, client_key)
    return {
        "ca": ca_path,
        "server_crt": server_crt,
        "server_key": server_key_path,
        "client_crt": client_crt,
        "client_key": client_key_path,
    }


def make_chain_pki(tmp: Path, server_name: str = "hello.mesh") -> dict[str, str]:
    """A root CA, an intermediate CA it signed, and server/client certificates the
    intermediate signed: ``root``, ``intermediate``, ``server_crt``/``server_key``,
    ``client_crt``/``client_key``, and ``other_ca`` (a second, unrelated root).  Trusting
    only ``root``, a peer is validated only if it sends ``intermediate`` with its certificate.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)

    def ca(subject: str, issuer: x509.Name, key: Any, signer: Any) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(signer, hashes.SHA256())
        )

    root = ca("test root", _name("test root"), root_key, root_key)
    root_path, _ = _write(tmp / "root", root, root_key)
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = ca("test intermediate", root.subject, mid_key, root_key)
    mid_path, _ = _write(tmp / "intermediate", mid, mid_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = ca("other root", _name("other root"), other_key, other_key)
    other_path, _ = _write(tmp / "other", other, other_key)
    server_cert, server_key = _issue(
        mid,
        mid_key,
        server_name,
        [x509.DNSName(server_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    server_crt, server_key_path = _write(tmp / "server", server_cert, server_key)
    client_cert, client_key = _issue(mid, mid_key, "client", [x509.DNSName("client")])
    client_crt, client_key_path = _write(tmp / "client", client_cert, client_key)
    return {
        "root": root_path,
        "intermediate": mid_path,
        "other_ca": other_path,
        "server_crt": server_crt,
        "server_key": server_key_path,
        "client_crt": client_crt,
        "client_key": client_key_path,
    }
