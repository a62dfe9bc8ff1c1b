# SPDX-License-Identifier: Apache-2.0
"""``cmd/clip``: verify the signed request, audit it, then cut, sign and upload on a worker thread.

The command thread only validates (milliseconds) and answers ``accepted`` or the refusal; the
``clip-worker`` thread does the slow part and publishes progress and the final result itself as
further replies on ``reply/{request_id}``. Footage covering an accepted request is held against
retention until its upload is done.

Accepted requests are kept in ``{data_dir}/clips/jobs.sqlite3`` (mode 0600: it holds the upload
tokens) with their cut clip and manifest, and the tus upload URL of each file once the server has
created it, until they end, so an agent restart or power loss resumes the upload from the server's
offset instead of losing the request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands.signing import SignedCommandVerifier
from edge_agent.core.types import Command, CommandRejected
from edge_agent.footage.audit_trail import AuditTrail
from edge_agent.footage.clips.manifest import build_manifest
from edge_agent.footage.clips.request import ClipRequest, Limits, parse_clip_request
from edge_agent.footage.clips.upload import Uploader, UploadError, UploadStopped, UrlStore
from edge_agent.footage.recorder import ClipError, Recorder

log = logging.getLogger(__name__)

Reply = Callable[[str, dict[str, Any]], None]


class _Stopped(Exception):
    """The agent is stopping mid-job: the job stays in the store for the next start."""


class _Expired(Exception):
    """The job is older than privacy.max_age_days: it fails and everything it kept is wiped."""


class JobStore:
    """Accepted requests not yet ended, durable across restarts."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it (SQLite gives its -wal/-shm files the same mode): tokens inside.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # Upload tokens are secrets: deleted rows are overwritten with zeros, and the WAL is emptied when a
        # job ends, so no copy of a token outlives its job on disk.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (request_id TEXT PRIMARY KEY, accepted REAL NOT NULL,"
                         " request TEXT NOT NULL)")
        # Where the server put each file's upload: a restart resumes it with HEAD instead of creating another.
        self._db.execute("CREATE TABLE IF NOT EXISTS upload_urls (request_id TEXT NOT NULL, file TEXT NOT NULL,"
                         " url TEXT NOT NULL, PRIMARY KEY (request_id, file))")

    def add(self, req: ClipRequest, accepted: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO jobs (request_id, accepted, request) VALUES (?, ?, ?)",
                             (req.request_id, accepted, json.dumps(dataclasses.asdict(req))))

    def remove(self, request_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE request_id = ?", (request_id,))
            self._db.execute("DELETE FROM upload_urls WHERE request_id = ?", (request_id,))
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def upload_urls(self, request_id: str) -> UrlStore:
        """The upload URLs of one request's files, by file name."""
        return _JobUrls(self, request_id)

    def get_upload_url(self, request_id: str, file: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT url FROM upload_urls WHERE request_id = ? AND file = ?",
                                   (request_id, file)).fetchone()
        return None if row is None else str(row[0])

    def set_upload_url(self, request_id: str, file: str, url: str | None) -> None:
        with self._lock:
            if url is None:
                self._db.execute("DELETE FROM upload_urls WHERE request_id = ? AND file = ?", (request_id, file))
            else:
                self._db.execute("INSERT OR REPLACE INTO upload_urls (request_id, file, url) VALUES (?, ?, ?)",
                                 (request_id, file, url))

    def forget_upload_urls(self, request_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM upload_urls WHERE request_id = ?", (request_id,))

    def pending(self) -> list[tuple[ClipRequest, float]]:
        with self._lock:
            rows = self._db.execute("SELECT request, accepted FROM jobs ORDER BY accepted").fetchall()
        # Jobs stored before purpose and operator were required lack them: they still resume.
        return [(ClipRequest(**{"purpose": "", "operator": "", **json.loads(r)}), float(a)) for r, a in rows]

    def oldest_accepted(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(accepted) FROM jobs").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _JobUrls:
    def __init__(self, store: JobStore, request_id: str) -> None:
        self._store, self._request_id = store, request_id

    def get(self, name: str) -> str | None:
        return self._store.get_upload_url(self._request_id, name)

    def put(self, name: str, url: str | None) -> None:
        self._store.set_upload_url(self._request_id, name, url)


@dataclass
class UploadStats:
    pending: int = 0
    active: str = ""
    done: int = 0
    failed: int = 0
    expired: int = 0  # of failed: older than privacy.max_age_days, failed and wiped by retention


class ClipService:
    def __init__(self, *, node_id: str, camera_id: str, recorder: Recorder, audit: AuditTrail,
                 verifier: SignedCommandVerifier, node_key: Ed25519PrivateKey, uploader: Uploader,
                 work_dir: Path, max_clip_s: float, max_pending: int, wait_for_footage_s: float,
                 progress_interval_s: float, allow_http: bool, give_up_after_s: float = 86400.0,
                 allowed_hosts: tuple[str, ...] = (), require_sealed_token: bool = True) -> None:
        self.node_id, self.camera_id = node_id, camera_id
        self.require_sealed_token = require_sealed_token
        self.recorder, self.audit, self.verifier = recorder, audit, verifier
        self.node_key, self.uploader = node_key, uploader
        self.work_dir = work_dir
        self.allowed_hosts = allowed_hosts
        self.max_clip_s, self.wait_for_footage_s = max_clip_s, wait_for_footage_s
        self.progress_interval_s, self.allow_http = progress_interval_s, allow_http
        self.stats = UploadStats()
        self._reply: Reply | None = None
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._staged: dict[str, ClipRequest] = {}  # accepted, waiting for the router's "accepted" reply
        self._jobs: queue.Queue[ClipRequest | None] = queue.Queue()  # bounded by max_pending in handle()
        self._thread = threading.Thread(target=self._run, name="clip-worker", daemon=True)
        self.give_up_after_s = give_up_after_s
        self.jobs = JobStore(work_dir / "jobs.sqlite3")
        self._accepted: dict[str, float] = {}
        self._expired: dict[str, str] = {}  # request_id -> why, for jobs retention has failed or is failing
        resumed = self.jobs.pending()
        live = {req.request_id for req, _ in resumed}
        for holder, _, _ in recorder.index.holds():
            if holder not in live:
                recorder.index.release(holder)  # a hold whose job ended while the agent was going down
        for req, accepted in resumed:
            log.info("clips: resuming request %s accepted %.0f s ago", req.request_id, time.time() - accepted)
            self._accepted[req.request_id] = accepted
            self.stats.pending += 1
            self._jobs.put(req)

    def start(self, reply: Reply) -> None:
        self._reply = reply
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self.uploader.stop.set()
        self._jobs.put(None)
        self._thread.join(5.0)
        self.jobs.close()

    def after_reply(self, reply: Reply) -> Reply:
        """Wraps the command router's replier: a job starts only once its "accepted" reply is out, so the
        requester always sees accepted before any progress."""

        def wrapped(request_id: str, payload: dict[str, Any]) -> None:
            reply(request_id, payload)
            with self._lock:
                req = self._staged.pop(request_id, None) if payload.get("command") == "clip" else None
            if req is not None:
                self._jobs.put(req)

        return wrapped

    def discard_staged(self) -> int:
        """Forgets accepted requests whose job has not started (for harnesses that never start the worker)."""
        with self._lock:
            staged, self._staged = list(self._staged.values()), {}
            self.stats.pending -= len(staged)
        for req in staged:
            self._end(req)
        return len(staged)

    # -- command thread --------------------------------------------------------------------------

    def handle(self, cmd: Command) -> dict[str, Any]:
        """Refusals are put on record by the command router; acceptance is recorded here, before anything."""
        now = time.time()
        span = self.recorder.index.span()
        limits = Limits(self.camera_id, self.max_clip_s, None if span is None else span[0], self.allow_http,
                        self.allowed_hosts, self.require_sealed_token)
        req = parse_clip_request(cmd.body, self.verifier, now, limits, self.node_key)
        if self.audit.log.was_accepted("clip_request", req.request_id):
            # The receiver may still hold that request's files: reusing the id could report "done" for them.
            raise CommandRejected(f"duplicate request_id: {req.request_id} was accepted before (audit log); "
                                  "use a new request_id for every request")
        with self._lock:
            duplicate = req.request_id in self._accepted
            busy = duplicate or self.stats.pending >= self._max_pending
            if not busy:
                self._accepted[req.request_id] = now
        if busy:
            raise CommandRejected(f"busy: request {req.request_id} is already being handled" if duplicate else
                                  f"busy: {self._max_pending} clip requests already pending (clips.max_pending)")
        # No footage leaves the pole unless the request is on record first.
        if self.audit.decision("clip", "accepted", req.request_id, cmd.body) is None:
            with self._lock:
                self._accepted.pop(req.request_id, None)
            raise CommandRejected("audit log unavailable: the request cannot be recorded, so it is refused")
        self.recorder.index.hold(req.request_id, req.start_ts, req.end_ts)
        self.jobs.add(req, now)
        with self._lock:
            self.stats.pending += 1
            self._staged[req.request_id] = req
        return {"state": "accepted"}

    def _audit(self, decision: str, request_id: str, **extra: Any) -> None:
        self.audit.decision("clip", decision, request_id, {}, **extra)

    # -- worker thread ---------------------------------------------------------------------------

    def _send(self, req: ClipRequest, state: str, ok: bool = True, **fields: Any) -> None:
        if self._reply is not None:
            self._reply(req.request_id, {"request_id": req.request_id, "command": "clip", "ok": ok, "state": state,
                                         **fields})

    def _run(self) -> None:
        while True:
            req = self._jobs.get()
            if req is None:
                return
            try:
                if not self._job(req):
                    return  # stopping: job, hold and files stay for the next start
            except Exception:
                # Nothing may end this thread but a stop: the next request must still be served.
                log.exception("clips: request %s: error outside the job", req.request_id)

    def _job(self, req: ClipRequest) -> bool:
        with self._lock:
            self.stats.pending -= 1
            if req.request_id not in self._accepted:
                return True  # ended while it waited in the queue (failed and wiped by retention)
            self.stats.active = req.request_id
        try:
            result = self._process(req)
            self.stats.done += 1
            self._audit("uploaded", req.request_id, **result)
            self._send(req, "done", **result)
        except (_Stopped, UploadStopped):
            log.info("clips: request %s continues at the next start", req.request_id)
            return False
        except _Expired as exc:
            self._failed_by_retention(req, str(exc), end=False)
        except (ClipError, UploadError, OSError) as exc:
            self.stats.failed += 1
            self._audit("failed", req.request_id, reason=str(exc))
            self._send(req, "failed", ok=False, error=str(exc))
        except Exception:
            log.exception("clips: request %s failed", req.request_id)
            self.stats.failed += 1
            self._audit("failed", req.request_id, reason="internal error")
            self._send(req, "failed", ok=False, error="internal error while producing the clip")
        finally:
            self.stats.active = ""
        self._end(req)
        return True

    def _end(self, req: ClipRequest) -> None:
        for path in self._files(req):
            path.unlink(missing_ok=True)
        self.jobs.remove(req.request_id)
        self.recorder.index.release(req.request_id)
        with self._lock:
            self._accepted.pop(req.request_id, None)
            self._expired.pop(req.request_id, None)

    # -- retention (privacy.max_age_days) --------------------------------------------------------

    def expire(self, now: float, max_age_s: float) -> int:
        """Fails every job accepted more than ``max_age_s`` ago and wipes what it kept (token, upload URLs, cut
        clip, manifest, hold on the footage): a request stuck that long (a receiver gone, a node off for weeks)
        must not keep footage and a bearer token on the pole. A job waiting in the queue ends here; the one
        being uploaded ends at its next chunk or attempt. Returns how many jobs were found expired."""
        why = expired_reason(max_age_s)
        waiting: list[ClipRequest] = []
        found = 0
        for req, accepted in self.jobs.pending():
            if accepted >= now - max_age_s:
                continue
            with self._lock:
                if req.request_id in self._expired:
                    continue  # already being failed
                self._expired[req.request_id] = why
                if self.stats.active != req.request_id:
                    # Claimed here, under the lock: the worker skips a job no longer in _accepted.
                    self._accepted.pop(req.request_id, None)
                    waiting.append(req)
            found += 1
        for req in waiting:
            self._failed_by_retention(req, why)
        return found

    def _check_expired(self, req: ClipRequest) -> None:
        with self._lock:
            why = self._expired.get(req.request_id)
        if why is not None:
            raise _Expired(why)

    def _failed_by_retention(self, req: ClipRequest, why: str, end: bool = True) -> None:
        log.warning("clips: request %s %s", req.request_id, why)
        self.stats.failed += 1
        self.stats.expired += 1
        self._audit("failed", req.request_id, reason=why)
        self._send(req, "failed", ok=False, error=why)
        if end:
            self._end(req)

    def oldest_age_s(self, now: float) -> float | None:
        accepted = self.jobs.oldest_accepted()
        return None if accepted is None else max(0.0, now - accepted)

    def _files(self, req: ClipRequest) -> tuple[Path, Path]:
        return self.work_dir / f"{req.request_id}.mp4", self.work_dir / f"{req.request_id}.manifest.json"

    def _process(self, req: ClipRequest) -> dict[str, Any]:
        self._check_expired(req)
        clip, manifest_path = self._files(req)
        if clip.is_file() and manifest_path.is_file():
            # Cut before a restart: upload exactly those bytes, so the receiver's partial file stays valid.
            manifest = json.loads(manifest_path.read_bytes())
        else:
            manifest = self._cut(req, clip, manifest_path)
            self.jobs.forget_upload_urls(req.request_id)  # uploads of earlier bytes are not these files'
        remaining = self._accepted.get(req.request_id, time.time()) + self.give_up_after_s - time.time()
        if remaining <= 0:
            raise UploadError(f"not uploaded within upload.give_up_after_s ({self.give_up_after_s:.0f} s)")
        last = [0.0]

        def progress(name: str, sent: int, total: int) -> None:
            self._check_expired(req)  # called at every attempt and chunk: retention can end a stuck upload
            now = time.monotonic()
            if now - last[0] >= self.progress_interval_s or sent == total:
                last[0] = now
                self._send(req, "uploading", file=name, sent_bytes=sent, total_bytes=total)

        # Each file becomes one tus upload; its URL is kept in the job store so a restart resumes it.
        urls, meta = self.jobs.upload_urls(req.request_id), {"request_id": req.request_id}
        manifest_sha256 = _sha(manifest_path.read_bytes())  # of exactly the bytes uploaded next
        self.uploader.upload(req.upload_url, req.upload_token, clip, clip.name, progress, metadata=meta, urls=urls)
        self.uploader.upload(req.upload_url, req.upload_token, manifest_path, manifest_path.name, progress,
                             metadata=meta, urls=urls)
        c = manifest["clip"]
        return {"sha256": c["sha256"], "bytes": c["bytes"], "frames": c["frames"],
                "manifest_sha256": manifest_sha256, "upload_host": req.upload_host}

    def _cut(self, req: ClipRequest, clip: Path, manifest_path: Path) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_for_footage_s
        # The newest footage is in a segment still being written: wait until it is closed and indexed.
        while True:
            span = self.recorder.index.span()
            if (span is not None and span[1] >= req.end_ts) or time.monotonic() >= deadline:
                break
            if self.uploader.stop.wait(0.5):
                raise _Stopped()
        manifest_path.unlink(missing_ok=True)
        cut = self.recorder.cut(req.start_ts, req.end_ts, clip)
        manifest = build_manifest(node_id=self.node_id, camera=req.camera, request_id=req.request_id,
                                  agency=req.agency, purpose=req.purpose, operator=req.operator,
                                  requested=(req.start, req.end), clip_path=clip,
                                  clip_range=(cut.first_ts, cut.last_ts), frames=cut.frames, node_key=self.node_key)
        # Written atomically, and only after the clip: a manifest on disk always describes a complete clip.
        tmp = manifest_path.with_name(manifest_path.name + ".part")
        tmp.write_bytes(json.dumps(manifest, indent=1).encode() + b"\n")
        os.replace(tmp, manifest_path)
        self._send(req, "cut", frames=cut.frames, bytes=cut.bytes, sha256=manifest["clip"]["sha256"],
                   reencoded_frames=cut.reencoded_frames)
        return manifest


def expired_reason(max_age_s: float) -> str:
    return f"older than privacy.max_age_days ({max_age_s / 86400:g} days): failed and wiped by retention"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expire_unattended(work_dir: Path, now: float, max_age_s: float,
                      audit: AuditTrail) -> tuple[int, set[str], float | None]:
    """Retention for clip jobs left behind by a recorder that has since been disabled: no ClipService runs to
    resume or fail them, so those accepted more than ``max_age_s`` ago are failed (on record) and wiped here.
    Returns how many, the request ids still kept, and when the oldest of those was accepted."""
    path = work_dir / "jobs.sqlite3"
    if not path.exists():
        return 0, set(), None
    store = JobStore(path)
    try:
        why, n = expired_reason(max_age_s), 0
        for req, accepted in store.pending():
            if accepted >= now - max_age_s:
                continue
            for name in (f"{req.request_id}.mp4", f"{req.request_id}.manifest.json"):
                (work_dir / name).unlink(missing_ok=True)
            store.remove(req.request_id)
            audit.decision("clip", "failed", req.request_id, {}, reason=why)
            log.warning("clips: request %s %s", req.request_id, why)
            n += 1
        return n, {req.request_id for req, _ in store.pending()}, store.oldest_accepted()
    finally:
        store.close()
