"""HTTPS when a certificate is configured: TLS 1.2 or newer is negotiated, TLS 1.1 is refused."""

from __future__ import annotations

import datetime
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import StewardProcess, make_process


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class HttpsProcess(StewardProcess):
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[StewardProcess, Path]]:
    cert, key = _self_signed(tmp_path)
    plain = make_process(tmp_path, STEWARD_TLS_CERTFILE=str(cert), STEWARD_TLS_KEYFILE=str(key))
    process = HttpsProcess(home=plain.home, port=plain.port, env=plain.env)
    original_get = httpx.get

    def trusting_get(url: str, **kwargs: object) -> httpx.Response:
        return original_get(url, verify=ssl.create_default_context(cafile=str(cert)), **kwargs)  # type: ignore[arg-type]

    httpx.get = trusting_get  # type: ignore[assignment]  # readiness probe speaks HTTPS
    try:
        process.start()
    finally:
        httpx.get = original_get  # type: ignore[assignment]
    yield process, cert
    process.stop()


def test_https_serves_with_tls12_or_newer_and_refuses_tls11(
    https_server: tuple[StewardProcess, Path],
) -> None:
    process, cert = https_server
    context = ssl.create_default_context(cafile=str(cert))
    with (
        socket.create_connection(("127.0.0.1", process.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert httpx.get(f"{process.url}/healthz", verify=context).status_code == 200

    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cafile=str(cert))
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with (
        socket.create_connection(("127.0.0.1", process.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError, match=r"UNEXPECTED_EOF|PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL"),
    ):
        old.wrap_socket(raw, server_hostname="127.0.0.1")
