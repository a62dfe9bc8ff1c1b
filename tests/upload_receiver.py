# SPDX-License-Identifier: Apache-2.0
"""An agency's upload endpoint for tests: the tus 1.0 subset of docs/clips.md (creation, HEAD, PATCH) over
real HTTPS (a self-signed CA made with ``cryptography``), in memory, able to cut a connection mid-upload.
tests/test_tus.py runs the same client against the tus reference server."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_tls(d: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1."""
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agency CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (d / "ca.pem", d / "server.pem", d / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Receiver:
    """Stores uploads in memory by their ``filename`` metadata; ``cut_after`` bytes into the first PATCH it
    drops the connection. The creation endpoint is ``url``; uploads live at ``/uploads/{n}`` (a relative
    ``Location``)."""

    def __init__(self, token: str, tls: tuple[Path, Path, Path] | None = None, cut_after: int | None = None) -> None:
        self.token = token
        self.files: dict[str, bytearray] = {}  # filename -> bytes received
        self.metadata: dict[str, dict[str, str]] = {}  # filename -> Upload-Metadata, decoded
        self.patches: list[tuple[str, int]] = []  # (filename, Upload-Offset) of every PATCH
        self.auth_failures = 0
        self.cut_after = cut_after
        self.cuts = 0
        self._uploads: dict[str, tuple[str, int]] = {}  # upload path -> (filename, Upload-Length)
        self._lock = threading.Lock()
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        scheme = "http"
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls[1]), str(tls[2]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}/incoming/case-42"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {rx.token}":
                    rx.auth_failures += 1
                    self._answer(401)
                    return False
                return True

            def _answer(self, status: int, offset: int | None = None, location: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Tus-Resumable", "1.0.0")
                if status >= 400:
                    self.close_connection = True  # a PATCH body may be left unread: never parse it as a request
                if offset is not None:
                    self.send_header("Upload-Offset", str(offset))
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_OPTIONS(self) -> None:
                self.send_response(204)
                self.send_header("Tus-Version", "1.0.0")
                self.send_header("Tus-Extension", "creation")
                self.end_headers()

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                meta = {}
                for item in (self.headers.get("Upload-Metadata") or "").split(","):
                    key, _, value = item.strip().partition(" ")
                    meta[key] = base64.b64decode(value).decode()
                name = meta["filename"]
                with rx._lock:
                    path = f"/uploads/{len(rx._uploads) + 1}"
                    rx._uploads[path] = (name, int(self.headers["Upload-Length"]))
                    rx.files[name] = bytearray()
                    rx.metadata[name] = meta
                self._answer(201, location=path)

            def do_HEAD(self) -> None:
                if not self._authorised():
                    return
                with rx._lock:
                    upload = rx._uploads.get(self.path)
                    held = None if upload is None else len(rx.files[upload[0]])
                if upload is None or held is None:
                    self._answer(404)
                    return
                self.send_response(200)
                self.send_header("Tus-Resumable", "1.0.0")
                self.send_header("Upload-Offset", str(held))
                self.send_header("Upload-Length", str(upload[1]))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_PATCH(self) -> None:
                if not self._authorised():
                    return
                if "Upload-Length" in self.headers:  # tus: only at creation (without creation-defer-length)
                    self._answer(400)
                    return
                offset = int(self.headers["Upload-Offset"])
                length = int(self.headers["Content-Length"])
                with rx._lock:
                    upload = rx._uploads.get(self.path)
                    if upload is None:
                        self._answer(404)
                        return
                    name = upload[0]
                    rx.patches.append((name, offset))
                    data = rx.files[name]
                    if offset != len(data):
                        self._answer(409, len(data))
                        return
                if rx.cut_after is not None and rx.cuts == 0 and length > rx.cut_after:
                    # The link dies mid-chunk: keep what arrived, answer nothing.
                    part = self.rfile.read(rx.cut_after)
                    with rx._lock:
                        data.extend(part)
                        rx.cuts += 1
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                body = self.rfile.read(length)
                with rx._lock:
                    data.extend(body)
                    self._answer(204, len(data))

        return Handler
