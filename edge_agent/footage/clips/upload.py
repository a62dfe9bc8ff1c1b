# SPDX-License-Identifier: Apache-2.0
"""Resumable, bandwidth-capped uploads over HTTPS: tus 1.0 core with the creation and checksum extensions.

``upload_url`` is a tus *creation endpoint*. For each file:

1. ``OPTIONS {endpoint}``: if ``Tus-Extension`` lists ``checksum`` and ``Tus-Checksum-Algorithm`` lists
   ``sha1``, every ``PATCH`` carries ``Upload-Checksum: sha1 <base64>`` of its chunk.
2. With an upload URL stored for this file (``UrlStore``, durable in the clip job store): ``HEAD`` on it,
   ``Upload-Offset`` is where to continue. ``404``/``410`` means the upload is gone: create a new one,
   from offset 0, at most once per call.
3. Otherwise ``POST {endpoint}`` with ``Upload-Length`` and ``Upload-Metadata`` (base64 ``filename``,
   ``request_id``): the ``Location`` answered, resolved against the endpoint, must be on the endpoint's
   scheme, host and port (the token goes wherever it points) and is stored before the first ``PATCH``.
4. ``PATCH`` with ``Upload-Offset``, ``Content-Type: application/offset+octet-stream`` and the next chunk
   (``Upload-Length`` is sent only at creation); ``204`` with the new ``Upload-Offset``. ``409``: ask
   again with ``HEAD``. ``460``: the chunk arrived damaged, send it again.
5. Done only when a final ``HEAD`` says the server holds exactly the file's length.

Network errors, ``5xx``, ``408`` and ``429`` are retried with exponential backoff, asking the server for
its offset before continuing. Any other ``4xx`` fails at once with the status and the server's message,
also when the server answers before it has read the whole chunk and closes the connection (the answer
is read after the failed send). Every request carries ``Authorization: Bearer <token>``; the token is
never logged nor put in an error message.

Why not a tus client library: tuspy (1.1.0, the maintained Python client) fits none of the things that
matter here. It sends each chunk in one ``requests.patch`` (no bandwidth cap, no way to stop mid-chunk
on shutdown), sets no timeout on its requests, takes TLS verification as a bool (no CA file per
uploader), retries every failure alike (a ``4xx`` included) and reports an early ``413`` as a connection
error, sends ``Upload-Checksum`` without asking whether the server supports it, and reads a stored
URL's offset with a network call in its constructor. The protocol is small, so it is followed here with
``http.client``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

_PIECE = 16 * 1024  # pacing granularity: bursts above the cap stay this small
_MESSAGE_CHARS = 200  # of a server's refusal, in errors and logs
_CHECKSUM_RETRIES = 3  # damaged chunks in a row before it counts as a failed attempt (backoff)
_CONFLICT_RETRIES = 3  # 409s in a row, each followed by HEAD, before it counts as a failed attempt


class UploadError(Exception):
    """The upload failed for good; the message says why (never containing the token)."""


class UploadStopped(UploadError):
    """The agent is stopping; the upload is to be continued at the next start."""


class _Retry(Exception):
    pass


@dataclass(frozen=True, slots=True)
class UploadSettings:
    max_kbps: float = 2000.0
    chunk_bytes: int = 256 * 1024
    timeout_s: float = 30.0
    retry_min_s: float = 2.0
    retry_max_s: float = 120.0
    give_up_after_s: float = 86400.0
    ca_file: Path | None = None


class UrlStore(Protocol):
    """Where the upload URL of each file (by name) is kept, so an upload resumes after a restart."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, url: str | None) -> None: ...


class MemoryUrls:
    """A UrlStore for one process: resumes across attempts, not across restarts."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self._urls.get(name)

    def put(self, name: str, url: str | None) -> None:
        if url is None:
            self._urls.pop(name, None)
        else:
            self._urls[name] = url


class RateLimiter:
    """Caps the average rate; shared by all uploads so they never add up to more than the cap."""

    def __init__(self, max_kbps: float) -> None:
        self._rate = max_kbps * 1000 / 8  # bytes per second
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def consume(self, n: int, stop: threading.Event) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + n / self._rate
            wait = start - now
        if wait > 0:
            stop.wait(wait)


Progress = Callable[[str, int, int], None]


@dataclass
class _File:
    """One file's upload across attempts."""

    endpoint: urllib.parse.SplitResult
    token: str
    path: Path
    name: str
    total: int
    metadata: str
    urls: UrlStore
    shown: str  # scheme://host[:port]: the path may be a capability, so only this goes in logs and errors
    checksum: bool | None = None  # None: not asked yet
    recreated: bool = False
    url: str | None = field(default=None)


class Uploader:
    def __init__(self, settings: UploadSettings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.max_kbps)
        self.stop = stop or threading.Event()
        self.bytes_sent = 0
        self._ssl = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)

    def upload(self, endpoint: str, token: str, path: Path, name: str, progress: Progress | None = None, *,
               metadata: Mapping[str, str] | None = None, urls: UrlStore | None = None) -> None:
        """Uploads ``path`` as ``name`` (its ``filename`` metadata) through the creation endpoint ``endpoint``.

        ``urls`` keeps the upload URL under ``name``; give a durable one to resume after a restart."""
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise UploadError(f"upload of {name}: the endpoint is not an http(s) URL")
        shown = f"{url.scheme}://{url.netloc.rpartition('@')[2]}"
        f = _File(url, token, path, name, path.stat().st_size, _encode_metadata({"filename": name, **(metadata or {})}),
                  urls if urls is not None else MemoryUrls(), shown)
        deadline = time.monotonic() + self.settings.give_up_after_s
        backoff = self.settings.retry_min_s
        while True:
            if self.stop.is_set():
                raise UploadStopped(f"upload of {name} stopped (agent shutting down)")
            try:
                self._attempt(f, progress)
                return
            except _Retry as exc:
                if time.monotonic() + backoff > deadline:
                    raise UploadError(f"upload of {name} to {shown} gave up after "
                                      f"{self.settings.give_up_after_s:.0f} s: {exc}") from None
                log.warning("upload: %s to %s: %s; retrying in %.1f s", name, shown, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.retry_max_s)

    # -- one attempt: a connection, resumed from what the server holds ---------------------------

    def _connect(self, url: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        host, port = url.hostname or "", url.port
        if url.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.settings.timeout_s, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=self.settings.timeout_s)

    def _attempt(self, f: _File, progress: Progress | None) -> None:
        # Every URL used is on the endpoint's origin (checked at creation), so one connection serves them all.
        conn = self._connect(f.endpoint)
        try:
            if f.checksum is None:
                f.checksum = self._offers_sha1(conn, f)
            f.url = f.urls.get(f.name)
            offset = self._head(conn, f) if f.url is not None else self._create(conn, f)
            if progress:
                progress(f.name, offset, f.total)
            damaged = conflicts = 0
            with open(f.path, "rb") as data:
                while offset < f.total:
                    data.seek(offset)
                    chunk = data.read(self.settings.chunk_bytes)
                    status, answered, message = self._patch(conn, f, offset, chunk)
                    if status == 409:  # our offset was wrong: the server says which is right
                        conflicts += 1
                        if conflicts >= _CONFLICT_RETRIES:
                            raise _Retry(f"{conflicts} offset conflicts in a row (HTTP 409)")
                        offset = self._head(conn, f)
                        continue
                    if status == 460:
                        damaged += 1
                        if damaged >= _CHECKSUM_RETRIES:
                            raise _Retry(f"{damaged} chunks in a row arrived damaged (HTTP 460)")
                        log.warning("upload: %s to %s: chunk at byte %d arrived damaged (HTTP 460); sending it again",
                                    f.name, f.shown, offset)
                        continue
                    if status in (404, 410):
                        offset = self._gone(conn, f, "PATCH", status)
                        continue
                    self._check(f, status, "PATCH", message)
                    if answered is None:
                        raise _Retry("server did not confirm the offset (no Upload-Offset)")
                    moved = self._within(f, int(answered))
                    if moved <= offset:
                        raise _Retry(f"server took none of the chunk at byte {offset}")
                    offset, damaged, conflicts = moved, 0, 0
                    if progress:
                        progress(f.name, offset, f.total)
            # "done" is for bytes the server has, not bytes we sent: ask it once more.
            confirmed = self._head(conn, f)
            if confirmed != f.total:
                raise _Retry(f"server holds {confirmed} of {f.total} bytes after the last chunk")
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        except ValueError:
            raise _Retry("server sent a malformed Upload-Offset") from None
        finally:
            conn.close()

    def _offers_sha1(self, conn: http.client.HTTPConnection, f: _File) -> bool:
        conn.request("OPTIONS", _target(f.endpoint), headers={"Authorization": f"Bearer {f.token}"})
        resp = conn.getresponse()
        resp.read()
        if not 200 <= resp.status < 300:
            return False  # OPTIONS is optional for a server: no extensions then, and the POST tells the rest
        extensions = _tokens(resp.getheader("Tus-Extension"))
        return "checksum" in extensions and "sha1" in _tokens(resp.getheader("Tus-Checksum-Algorithm"))

    def _create(self, conn: http.client.HTTPConnection, f: _File) -> int:
        headers = {**self._auth(f), "Upload-Length": str(f.total), "Upload-Metadata": f.metadata}
        conn.request("POST", _target(f.endpoint), headers=headers)
        resp = conn.getresponse()
        message = self._message(f, resp.read())
        self._check(f, resp.status, "POST", message)
        location = resp.getheader("Location")
        if not location:
            raise UploadError(f"upload of {f.name} to {f.shown}: the server created an upload but gave no Location")
        url = urllib.parse.urldefrag(urllib.parse.urljoin(urllib.parse.urlunsplit(f.endpoint), location.strip()))[0]
        if not _same_origin(urllib.parse.urlsplit(url), f.endpoint):
            # The token would follow the URL: never to a host the request did not name.
            raise UploadError(f"upload of {f.name} refused: {f.shown} answered POST with an upload URL on another "
                              "scheme, host or port")
        f.urls.put(f.name, url)  # stored before any byte is sent, so a restart resumes this upload
        f.url = url
        log.info("upload: %s: created an upload at %s", f.name, f.shown)
        answered = resp.getheader("Upload-Offset")
        return self._within(f, int(answered)) if answered is not None else 0

    def _head(self, conn: http.client.HTTPConnection, f: _File) -> int:
        assert f.url is not None
        conn.request("HEAD", _target(urllib.parse.urlsplit(f.url)), headers=self._auth(f))
        resp = conn.getresponse()
        resp.read()
        if resp.status in (404, 410):
            return self._gone(conn, f, "HEAD", resp.status)
        self._check(f, resp.status, "HEAD", "")
        length = resp.getheader("Upload-Length")
        if length is not None and int(length) != f.total:
            # The stored URL is another file's upload: the bytes held there are not ours to continue.
            return self._gone(conn, f, "HEAD", resp.status, f"it holds an upload of {int(length)} bytes")
        answered = resp.getheader("Upload-Offset")
        if answered is None:
            raise _Retry("server did not say how much it has (no Upload-Offset)")
        return self._within(f, int(answered))

    def _gone(self, conn: http.client.HTTPConnection, f: _File, method: str, status: int, why: str = "") -> int:
        why = why or f"{method} answered HTTP {status}"
        if f.recreated:
            raise UploadError(f"upload of {f.name} to {f.shown} lost again after it was created anew ({why})")
        f.recreated = True
        f.urls.put(f.name, None)
        f.url = None
        log.warning("upload: %s to %s: the upload is gone (%s); creating it anew from byte 0", f.name, f.shown, why)
        return self._create(conn, f)

    def _patch(self, conn: http.client.HTTPConnection, f: _File, offset: int,
               chunk: bytes) -> tuple[int, str | None, str]:
        assert f.url is not None
        headers = {**self._auth(f), "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
                   "Content-Length": str(len(chunk))}
        if f.checksum:
            headers["Upload-Checksum"] = "sha1 " + base64.b64encode(hashlib.sha1(chunk).digest()).decode()
        conn.putrequest("PATCH", _target(urllib.parse.urlsplit(f.url)), skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            for i in range(0, len(chunk), _PIECE):
                piece = chunk[i:i + _PIECE]
                self.limiter.consume(len(piece), self.stop)
                if self.stop.is_set():
                    raise UploadStopped(f"upload of {f.name} stopped at byte {offset + i} (agent shutting down)")
                conn.send(piece)
                self.bytes_sent += len(piece)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            # A server may answer (413, 403, ...) before reading the whole body, then close: that answer is
            # the reason, not the broken connection. Without one, the OSError makes this attempt a retry.
            early = self._early_answer(conn)
            if early is None:
                raise
            conn.close()  # the rest of the body was never sent: this connection cannot carry another request
            status, answered, body = early
        else:
            resp = conn.getresponse()
            status, answered, body = resp.status, resp.getheader("Upload-Offset"), resp.read()
        return status, answered, self._message(f, body)

    @staticmethod
    def _early_answer(conn: http.client.HTTPConnection) -> tuple[int, str | None, bytes] | None:
        try:
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException):
            return None
        try:
            body = resp.read()
        except (OSError, http.client.HTTPException):
            body = b""  # the status is what matters; the connection may die before the message is read
        return resp.status, resp.getheader("Upload-Offset"), body

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _auth(f: _File) -> dict[str, str]:
        return {"Authorization": f"Bearer {f.token}", "Tus-Resumable": "1.0.0"}

    @staticmethod
    def _message(f: _File, body: bytes) -> str:
        text = " ".join(body[:4 * _MESSAGE_CHARS].decode("utf-8", "replace").split())
        if f.token and f.token in text:
            text = text.replace(f.token, "<token>")  # a server echoing the request must not leak it
        return text[:_MESSAGE_CHARS] + ("…" if len(text) > _MESSAGE_CHARS else "")

    @staticmethod
    def _within(f: _File, offset: int) -> int:
        if not 0 <= offset <= f.total:
            # More than we have means the server holds another file there: never "done" on it.
            raise UploadError(f"upload of {f.name}: server reports offset {offset} for a file of {f.total} bytes: "
                              "it holds a different file")
        return offset

    @staticmethod
    def _check(f: _File, status: int, method: str, message: str) -> None:
        if 200 <= status < 300:
            return
        said = f": {message}" if message else ""
        if status >= 500 or status in (408, 429):
            raise _Retry(f"{method} answered HTTP {status}{said}")
        raise UploadError(f"upload of {f.name} refused: {method} answered HTTP {status}{said}")


def _target(url: urllib.parse.SplitResult) -> str:
    return (url.path or "/") + (f"?{url.query}" if url.query else "")


def _tokens(header: str | None) -> set[str]:
    return {t.strip().lower() for t in (header or "").split(",") if t.strip()}


def _same_origin(a: urllib.parse.SplitResult, b: urllib.parse.SplitResult) -> bool:
    def origin(u: urllib.parse.SplitResult) -> tuple[str, str, int]:
        default = 443 if u.scheme.lower() == "https" else 80
        return u.scheme.lower(), (u.hostname or "").lower(), u.port or default

    try:
        return not a.username and origin(a) == origin(b)
    except ValueError:  # a port that is not a number
        return False


def _encode_metadata(metadata: Mapping[str, str]) -> str:
    for key in metadata:
        if not key or not key.isascii() or any(c in key for c in " ,\t"):
            raise ValueError(f"tus metadata key {key!r}: ASCII without spaces or commas")
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
