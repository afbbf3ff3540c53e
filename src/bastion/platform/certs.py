"""Certificates for mutual TLS between the API (client) and the vault's internal listener (server),
and the sandbox acquirer's server certificate (its clients, the vault's forward and the API's
connector, trust this CA alone for it).

`bastion certs init` makes a private CA at install time, issues one vault server certificate
and one API client certificate under it, and throws the CA's private key away. Both sides
trust that CA only: the vault accepts no client the CA did not sign, and the API talks to no
vault the CA did not sign. Files live in `<data_dir>/certs/` (mode 0700), keys mode 0600.
"""

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.platform.secret_files import check_private

VALIDITY_DAYS_DEFAULT = 825  # the longest validity TLS clients still accept for a server certificate
# Issued a little in the past so that a host whose clock runs slightly behind accepts them at once.
_CLOCK_SKEW = timedelta(minutes=5)
_CA_NAME = "Bastion private CA"
_VAULT_NAME = "bastion-vault"
_API_NAME = "bastion-api"
_ACQUIRER_NAME = "bastion-acquirer"
# The names the API may dial the vault's internal listener (and the acquirer) by.
_LOOPBACK_NAMES = x509.SubjectAlternativeName(
    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
)


@dataclass(frozen=True, slots=True)
class CertPaths:
    ca_cert: Path
    vault_cert: Path
    vault_key: Path
    api_cert: Path
    api_key: Path
    acquirer_cert: Path
    acquirer_key: Path

    @classmethod
    def under(cls, data_dir: Path) -> "CertPaths":
        directory = data_dir / "certs"
        return cls(
            ca_cert=directory / "ca.pem",
            vault_cert=directory / "vault.pem",
            vault_key=directory / "vault-key.pem",
            api_cert=directory / "api.pem",
            api_key=directory / "api-key.pem",
            acquirer_cert=directory / "acquirer.pem",
            acquirer_key=directory / "acquirer-key.pem",
        )

    @property
    def all(self) -> tuple[Path, ...]:
        return (
            self.ca_cert,
            self.vault_cert,
            self.vault_key,
            self.api_cert,
            self.api_key,
            self.acquirer_cert,
            self.acquirer_key,
        )


def init_certs(data_dir: Path, *, validity_days: int = VALIDITY_DAYS_DEFAULT) -> tuple[CertPaths, bool]:
    """The certificate files, issued unless all of them exist already; True when issued now.

    A partial set is issued again in full: with the CA key gone, one missing certificate
    cannot be re-issued alone, and the API and the vault must both be restarted after.
    """
    paths = CertPaths.under(data_dir)
    if all(path.exists() for path in paths.all):
        return paths, False
    directory = paths.ca_cert.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    # Old files go first, so that an interrupted run leaves a set with holes (issued again
    # next time), never a complete-looking mix of two CAs.
    for path in paths.all:
        path.unlink(missing_ok=True)

    now = datetime.now(UTC) - _CLOCK_SKEW
    validity = (now, now + timedelta(days=validity_days))
    # The CA key lives only in this function's memory: once the two certificates are signed,
    # nobody can mint another client certificate the vault would accept, even with a copy of
    # the data directory. Running init again after deleting the certs re-issues everything.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(_CA_NAME)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    vault_key, vault_cert = _issue(
        ca_cert, ca_key, common_name=_VAULT_NAME, usage=ExtendedKeyUsageOID.SERVER_AUTH, validity=validity, names=_LOOPBACK_NAMES
    )
    api_key, api_cert = _issue(ca_cert, ca_key, common_name=_API_NAME, usage=ExtendedKeyUsageOID.CLIENT_AUTH, validity=validity)
    acquirer_key, acquirer_cert = _issue(
        ca_cert,
        ca_key,
        common_name=_ACQUIRER_NAME,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        validity=validity,
        names=_LOOPBACK_NAMES,
    )

    _write(paths.vault_key, _private_pem(vault_key), mode=0o600)
    _write(paths.vault_cert, vault_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    _write(paths.api_key, _private_pem(api_key), mode=0o600)
    _write(paths.api_cert, api_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    _write(paths.acquirer_key, _private_pem(acquirer_key), mode=0o600)
    _write(paths.acquirer_cert, acquirer_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    _write(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return paths, True


def server_ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """The vault's internal listener: TLS 1.2+, a client certificate from the private CA required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    check_private(paths.vault_key)
    context.load_cert_chain(paths.vault_cert, paths.vault_key)
    # The private CA is the only issuer trusted: no system store is loaded on a server context.
    context.load_verify_locations(cafile=paths.ca_cert)
    return context


def client_ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """The API's side: trusts the private CA only (not the system store), presents the API certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname checking and CERT_REQUIRED by default
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=paths.ca_cert)
    check_private(paths.api_key)
    context.load_cert_chain(paths.api_cert, paths.api_key)
    return context


def private_ca_client_context(paths: CertPaths) -> ssl.SSLContext:
    """A client of the sandbox acquirer: trusts the private CA only, presents no certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=paths.ca_cert)
    return context


def uvicorn_ssl_options(paths: CertPaths) -> dict[str, Any]:
    """`server_ssl_context` as uvicorn's keyword arguments (it builds its context from file paths).

    Its context is a PROTOCOL_TLS_SERVER one, whose minimum is TLS 1.2 on Python 3.10+."""
    return {
        "ssl_certfile": str(paths.vault_cert),
        "ssl_keyfile": str(paths.vault_key),
        "ssl_ca_certs": str(paths.ca_cert),
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    # A CA signs certificates (and CRLs); a leaf signs TLS handshakes (ECDSA).
    return x509.KeyUsage(
        digital_signature=not key_cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    validity: tuple[datetime, datetime],
    names: x509.SubjectAlternativeName | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh key and its end-entity certificate, signed by the CA, for one purpose only."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names is not None:
        builder = builder.add_extension(names, critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write(path: Path, content: bytes, *, mode: int) -> None:
    """Write to a temporary file created with its final mode, then rename: no reader ever sees
    half a file, and a key is never readable by others, not even for a moment."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
