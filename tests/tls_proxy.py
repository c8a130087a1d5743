"""A mutual-TLS front for a plain Temporal frontend, as a self-hosted cluster or Temporal Cloud puts
one before theirs: it accepts only clients whose certificate its CA signed, forwards the bytes to
the real server, and reads the HTTP/2 headers going through (HPACK) so a test sees the metadata a
client sent (``authorization: Bearer <API key>``).

The certificates are made here with ``cryptography``: a CA, a server certificate for
``localhost`` and 127.0.0.1, and a client certificate with a common name of the test's choosing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import hpack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, CONTINUATION = 0x1, 0x9


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.now(UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Certificates:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"


def make_certificates(folder: Path, *, client_name: str) -> Certificates:
    """A CA, the server's certificate and a client's, as PEM files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = Certificates(folder)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("nudge-test-ca", ca_key, None, ca=True)
    for cert_path, key_path, subject, server in (
        (paths.server_cert, paths.server_key, "localhost", True),
        (paths.client_cert, paths.client_key, client_name, False),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject, key, (ca.subject, ca_key), server=server)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


@dataclass
class Seen:
    """What went through the front: each accepted client's certificate name (a client without
    one never gets this far: the handshake fails), and every request header (name -> values)."""

    clients: list[str] = field(default_factory=list)
    headers: dict[str, list[str]] = field(default_factory=dict)


class _Headers:
    """Reads the client's HTTP/2 frames as they pass and decodes each header block."""

    def __init__(self, seen: Seen) -> None:
        self._seen = seen
        self._buffer = b""
        self._preface = False
        self._decoder = hpack.Decoder()
        self._block = b""

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._preface:
            if len(self._buffer) < len(PREFACE):
                return
            self._buffer, self._preface = self._buffer[len(PREFACE) :], True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            payload, self._buffer = self._buffer[9 : 9 + length], self._buffer[9 + length :]
            if kind == HEADERS:
                if flags & 0x8:  # PADDED
                    payload = payload[1 : len(payload) - payload[0]]
                if flags & 0x20:  # PRIORITY
                    payload = payload[5:]
                self._block = payload
            elif kind == CONTINUATION:
                self._block += payload
            else:
                continue
            if flags & 0x4:  # END_HEADERS
                for name, value in self._decoder.decode(self._block):
                    self._seen.headers.setdefault(str(name), []).append(str(value))
                self._block = b""


@contextlib.asynccontextmanager
async def mutual_tls_front(certs: Certificates, upstream_port: int) -> AsyncIterator[tuple[int, Seen]]:
    """Serve on a free loopback port; answers the port and what it saw."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs.ca))
    context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    seen = Seen()
    tasks: set[asyncio.Task[None]] = set()

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sniff: _Headers | None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if sniff is not None:
                    sniff.feed(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
        seen.clients.extend(names)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pump(reader, up_writer, _Headers(seen)), pump(up_reader, writer, None))

    def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(accept(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
