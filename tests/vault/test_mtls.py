"""Mutual TLS between the API and the vault's internal listener: the files `bastion certs init`
writes, and a real uvicorn server with those settings that answers the API's certificate and
nobody else (no certificate, a certificate from another CA, the vault's own server certificate,
plain HTTP)."""

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bastion.platform.certs import CertPaths, client_ssl_context, init_certs, server_ssl_context, uvicorn_ssl_options

STARTUP_TIMEOUT_S = 10
REQUEST_TIMEOUT_S = 5
HANDSHAKE_ROUNDS_MAX = 10


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    issued, created = init_certs(tmp_path_factory.mktemp("vault-data"))
    assert created
    return issued


@pytest.fixture(scope="module")
def other_paths(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    """A complete set under another private CA: what an attacker's own `certs init` would give."""
    return init_certs(tmp_path_factory.mktemp("other-data"))[0]


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture(scope="module")
def vault_url(paths: CertPaths) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 with the vault's TLS settings, in a thread."""
    app = Starlette(routes=[Route("/", _ok)])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound here, so the port is known and never raced for
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", **uvicorn_ssl_options(paths))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="mtls-vault", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)
        listener.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_init_writes_keys_private_and_keeps_no_ca_key(paths: CertPaths) -> None:
    directory = paths.ca_cert.parent
    assert _mode(directory) == 0o700
    assert _mode(paths.vault_key) == 0o600
    assert _mode(paths.api_key) == 0o600
    assert _mode(paths.acquirer_key) == 0o600
    assert sorted(path.name for path in directory.iterdir()) == [
        "acquirer-key.pem",
        "acquirer.pem",
        "api-key.pem",
        "api.pem",
        "ca.pem",
        "vault-key.pem",
        "vault.pem",
    ]
    holding_private_keys = [path.name for path in directory.iterdir() if b"PRIVATE KEY" in path.read_bytes()]
    assert sorted(holding_private_keys) == ["acquirer-key.pem", "api-key.pem", "vault-key.pem"]


def test_certificates_say_what_each_one_may_do(paths: CertPaths) -> None:
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    vault = x509.load_pem_x509_certificate(paths.vault_cert.read_bytes())
    api = x509.load_pem_x509_certificate(paths.api_cert.read_bytes())

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign

    for leaf in (vault, api):
        assert leaf.issuer == ca.subject
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        leaf.verify_directly_issued_by(ca)
    names = vault.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert list(vault.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(api.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert api.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bastion-api"


def test_init_is_idempotent_and_a_partial_set_is_issued_again_in_full(tmp_path: Path) -> None:
    paths, created = init_certs(tmp_path)
    assert created
    before = {path: path.read_bytes() for path in paths.all}

    again, created = init_certs(tmp_path)
    assert (again, created) == (paths, False)
    assert {path: path.read_bytes() for path in paths.all} == before

    paths.vault_cert.unlink()
    again, created = init_certs(tmp_path)
    assert created
    # With the CA key gone, everything is new: the old API certificate no longer counts.
    assert all(path.read_bytes() != before[path] for path in paths.all)
    assert _mode(paths.api_key) == 0o600


def _handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    """A TLS handshake in memory, no socket involved; ssl.SSLError when either side refuses."""
    server_in, server_out, client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    client = client_context.wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    pending = [client, server]
    for _ in range(HANDSHAKE_ROUNDS_MAX):
        for side in list(pending):
            try:
                side.do_handshake()
                pending.remove(side)
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if not pending:
            return
    raise AssertionError("the handshake did not finish")


def test_the_contexts_trust_each_other_and_nobody_else(paths: CertPaths, other_paths: CertPaths) -> None:
    _handshake(server_ssl_context(paths), client_ssl_context(paths))
    with pytest.raises(ssl.SSLError):
        _handshake(server_ssl_context(paths), client_ssl_context(other_paths))  # a vault from another CA
    no_certificate = ssl.create_default_context(cafile=paths.ca_cert)
    with pytest.raises(ssl.SSLError):
        _handshake(server_ssl_context(paths), no_certificate)
    assert server_ssl_context(paths).minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client_ssl_context(paths).verify_mode == ssl.CERT_REQUIRED


def test_the_api_certificate_is_answered(paths: CertPaths, vault_url: str) -> None:
    with httpx.Client(verify=client_ssl_context(paths), timeout=REQUEST_TIMEOUT_S) as client:
        response = client.get(vault_url)
    assert response.status_code == 200
    assert response.text == "ok"


def _refused(paths: CertPaths, vault_url: str, context: ssl.SSLContext) -> None:
    """The listener, alive and answering the API's certificate, closes the TLS connection of
    `context` without an HTTP answer. TLS 1.3 ends the client's side of the handshake before
    the server has judged its certificate, so the refusal shows on the first read: the
    connection closes (or an alert arrives). A listener that is down fails the connect, and
    one that let the client in would answer the request."""
    with httpx.Client(verify=client_ssl_context(paths), timeout=REQUEST_TIMEOUT_S) as client:
        assert client.get(vault_url).status_code == 200, "the listener answers the API's certificate"
    url = httpx.URL(vault_url)
    try:
        with (
            socket.create_connection((url.host, url.port), timeout=REQUEST_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=url.host) as tls,
        ):
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: vault\r\n\r\n")
            answer = tls.recv(1024)
    except (ssl.SSLError, ConnectionResetError):
        return  # refused with an alert or a reset
    assert answer == b"", f"the listener answered instead of refusing: {answer!r}"


def test_a_client_without_a_certificate_is_refused(paths: CertPaths, vault_url: str) -> None:
    _refused(paths, vault_url, ssl.create_default_context(cafile=paths.ca_cert))


def test_a_certificate_from_another_ca_is_refused(paths: CertPaths, other_paths: CertPaths, vault_url: str) -> None:
    context = ssl.create_default_context(cafile=paths.ca_cert)  # trusts the vault, so only the server can refuse
    context.load_cert_chain(other_paths.api_cert, other_paths.api_key)
    _refused(paths, vault_url, context)


def test_a_certificate_of_the_ca_not_meant_for_clients_is_refused(paths: CertPaths, vault_url: str) -> None:
    context = ssl.create_default_context(cafile=paths.ca_cert)
    context.load_cert_chain(paths.vault_cert, paths.vault_key)  # serverAuth only
    _refused(paths, vault_url, context)


def test_plain_http_is_refused(vault_url: str) -> None:
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client, pytest.raises(httpx.TransportError):
        client.get(vault_url.replace("https://", "http://"))
