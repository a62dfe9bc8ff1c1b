# SPDX-License-Identifier: Apache-2.0
"""Resumable, bandwidth-capped HTTPS upload (a small subset of the tus 1.0 core protocol).

For each file ``{upload_url}/{name}``:

* ``HEAD`` with ``Authorization: Bearer <token>`` → ``200`` with ``Upload-Offset: <bytes received>``
  (``404`` means nothing received yet);
* ``PATCH`` with ``Upload-Offset: <offset>``, ``Upload-Length: <total>``,
  ``Content-Type: application/offset+octet-stream`` and the next chunk as body → ``204`` with the
  new ``Upload-Offset``. ``409`` means the offset was wrong: ask again with ``HEAD``.

The upload is complete only when a final ``HEAD`` says the receiver holds exactly the file's length; an
offset beyond it (another file under that name) fails the upload. A broken connection or a 5xx is
retried with exponential backoff, asking the receiver how much it has before continuing, so an
interrupted upload resumes where it stopped. Any other 4xx (a refused
token, a bad URL) fails at once. The bearer token is sent only in the header and never logged.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PIECE = 16 * 1024  # pacing granularity: bursts above the cap stay this small


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


class Uploader:
    def __init__(self, settings: UploadSettings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.max_kbps)
        self.stop = stop or threading.Event()
        self.bytes_sent = 0
        self._ssl = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)

    def upload(self, base_url: str, token: str, path: Path, name: str, progress: Progress | None = None) -> None:
        url = urllib.parse.urlsplit(base_url.rstrip("/") + "/" + urllib.parse.quote(name))
        shown = f"{url.scheme}://{url.hostname}{':' + str(url.port) if url.port else ''}/…/{name}"
        total = path.stat().st_size
        deadline = time.monotonic() + self.settings.give_up_after_s
        backoff = self.settings.retry_min_s
        while True:
            if self.stop.is_set():
                raise UploadStopped(f"upload of {name} stopped (agent shutting down)")
            try:
                self._attempt(url, token, path, name, total, progress)
                return
            except _Retry as exc:
                if time.monotonic() + backoff > deadline:
                    raise UploadError(f"upload of {name} to {shown} gave up after "
                                      f"{self.settings.give_up_after_s:.0f} s: {exc}") from None
                log.warning("upload: %s to %s: %s; retrying in %.1f s", name, shown, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.retry_max_s)

    def _connect(self, url: urllib.parse.SplitResult) -> http.client.HTTPConnection:
        host, port = url.hostname or "", url.port
        if url.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.settings.timeout_s, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=self.settings.timeout_s)

    def _attempt(self, url: urllib.parse.SplitResult, token: str, path: Path, name: str, total: int,
                 progress: Progress | None) -> None:
        target = url.path + (f"?{url.query}" if url.query else "")
        auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
        conn = self._connect(url)
        try:
            offset = self._within(self._offset(conn, target, auth), total)
            if progress:
                progress(name, offset, total)
            with open(path, "rb") as f:
                while offset < total:
                    f.seek(offset)
                    chunk = f.read(self.settings.chunk_bytes)
                    conn.putrequest("PATCH", target)
                    for k, v in {**auth, "Upload-Offset": str(offset), "Upload-Length": str(total),
                                 "Content-Type": "application/offset+octet-stream",
                                 "Content-Length": str(len(chunk))}.items():
                        conn.putheader(k, v)
                    conn.endheaders()
                    for i in range(0, len(chunk), _PIECE):
                        piece = chunk[i:i + _PIECE]
                        self.limiter.consume(len(piece), self.stop)
                        if self.stop.is_set():
                            raise UploadStopped(f"upload of {name} stopped at byte {offset + i} (agent shutting down)")
                        conn.send(piece)
                        self.bytes_sent += len(piece)
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 409:
                        offset = self._within(self._offset(conn, target, auth), total)
                        continue
                    self._check(resp.status, "PATCH")
                    answered = resp.getheader("Upload-Offset")
                    if answered is None:
                        raise _Retry("receiver did not confirm the offset (no Upload-Offset)")
                    offset = self._within(int(answered), total)
                    if progress:
                        progress(name, offset, total)
            # "done" is for bytes the receiver has, not bytes we sent: ask it once more.
            confirmed = self._within(self._offset(conn, target, auth), total)
            if confirmed != total:
                raise _Retry(f"receiver holds {confirmed} of {total} bytes after the last chunk")
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        except ValueError:
            raise _Retry("receiver sent a malformed Upload-Offset") from None
        finally:
            conn.close()

    def _offset(self, conn: http.client.HTTPConnection, target: str, auth: dict[str, str]) -> int:
        conn.request("HEAD", target, headers=auth)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 404:
            return 0
        self._check(resp.status, "HEAD")
        answered = resp.getheader("Upload-Offset")
        if answered is None:
            raise _Retry("receiver did not say how much it has (no Upload-Offset)")
        return int(answered)

    @staticmethod
    def _within(offset: int, total: int) -> int:
        if not 0 <= offset <= total:
            # More than we have means the receiver holds another file under this name: never "done" on it.
            raise UploadError(f"receiver reports offset {offset} for a file of {total} bytes: it holds a "
                              "different file under this name")
        return offset

    @staticmethod
    def _check(status: int, method: str) -> None:
        if 200 <= status < 300:
            return
        if status >= 500 or status in (408, 429):
            raise _Retry(f"{method} answered HTTP {status}")
        raise UploadError(f"upload refused: {method} answered HTTP {status}")
