# SPDX-License-Identifier: Apache-2.0
"""The audit log: an append-only, hash-chained, signed record of every signed request and its outcome.

One JSON object per line: ``{"seq", "ts", "prev", "entry", "hash", "sig"}``. ``hash`` is the SHA-256
of the canonical JSON of ``{"seq", "ts", "prev", "entry"}``, ``prev`` the previous line's ``hash`` (64
zeros for the first) and ``sig`` the node key's Ed25519 signature over ``hash`` (base64). Changing,
removing or reordering a line breaks the chain; rewriting history with recomputed hashes needs the node
key to re-sign it; removing the *last* lines is caught by the head: the node keeps ``audit.head.json``
(last seq and hash) beside the log and publishes every record as ``events/audit``, so the operations room
holds a head the log must still contain (``edge-agent audit verify --head SEQ:HASH``).

Each line is fsynced before the append returns. The log rotates at ``max_bytes``: the full file is
renamed ``audit-{first seq}.log`` and the chain carries on in a new ``audit.log``. A log that is missing or
shorter than its head when the node starts is never a silent restart: the chain continues from the head, a
gap record is appended, and :attr:`AuditLog.problem` says what happened (health and log show it).

Retention: the log is evidence, kept ``audit.keep_days`` (5 years), then deleted a whole rotated file at a
time, oldest first (the live file also rotates once its first entry is a month old, so no entry outlives
the bound by more than that). Before a file goes, an ``audit_retention`` record naming its seq range and
last hash is appended to the chain, so the log then starts after seq 1 on record: :func:`verify_file`
accepts a first file whose first line links to a hash such a record names, and to nothing else.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.commands.signing import canonical_json
from edge_agent.core.atomic_file import replace_file

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_SUFFIX = ".head.json"
_ROTATED = re.compile(r"^audit-(\d{9,})\.log$")
_FIELDS = {"seq", "ts", "prev", "entry", "hash", "sig"}
RETENTION = "audit_retention"  # entry action of the record that vouches for a file removed by retention
ROTATE_AFTER_S = 30 * 86400.0  # the live file rotates at this age too, so retention can delete by month


class AuditError(Exception):
    """The audit log cannot be opened or written; the message says why."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    ts: float
    prev: str
    entry: dict[str, Any]
    hash: str
    sig: str

    def as_dict(self) -> dict[str, Any]:
        """The record exactly as its log line: enough for anyone to recompute ``hash`` and check ``sig``."""
        return {"seq": self.seq, "ts": self.ts, "prev": self.prev, "entry": self.entry, "hash": self.hash,
                "sig": self.sig}


def line_hash(seq: int, ts: float, prev: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"seq": seq, "ts": ts, "prev": prev, "entry": entry})).hexdigest()


def head_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.stem + HEAD_SUFFIX)


@dataclass(frozen=True, slots=True)
class RotatedFile:
    """What retention needs to know of a rotated file (they never change, so this is read once)."""

    path: Path
    first_seq: int
    first_ts: float
    last_seq: int
    last_hash: str
    newest_ts: float


def _rotated_file(path: Path) -> RotatedFile | None:
    recs = []
    for raw in path.read_bytes().splitlines():
        try:
            rec = json.loads(raw)
            recs.append((int(rec["seq"]), float(rec["ts"]), str(rec["hash"])))
        except (ValueError, KeyError, TypeError):
            continue
    if not recs:
        return None
    return RotatedFile(path, recs[0][0], recs[0][1], recs[-1][0], recs[-1][2], max(ts for _, ts, _ in recs))


def log_files(log_path: Path) -> list[Path]:
    """The rotated files in chain order, then the current one (those that exist)."""
    rotated = sorted((p for p in log_path.parent.glob("audit-*.log") if _ROTATED.match(p.name)),
                     key=lambda p: int(_ROTATED.match(p.name).group(1)))  # type: ignore[union-attr]
    return rotated + ([log_path] if log_path.exists() else [])


def read_head(log_path: Path) -> tuple[int, str] | None:
    try:
        raw = json.loads(head_path(log_path).read_bytes())
        return int(raw["seq"]), str(raw["hash"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _last_line(files: list[Path]) -> tuple[int, str] | None:
    """(seq, hash) of the newest readable record, or None when there is none."""
    for path in reversed(files):
        for raw in reversed(path.read_bytes().splitlines()):
            try:
                rec = json.loads(raw)
                return int(rec["seq"]), str(rec["hash"])
            except (ValueError, KeyError, TypeError):
                continue
    return None


class AuditLog:
    def __init__(self, path: Path, signer: Ed25519PrivateKey | None = None, max_bytes: int = 16 * 2**20) -> None:
        self.path = path
        self.problem = ""  # why the log is not intact since the last start; "" when it is
        self._signer = signer
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._seq = 0
        self._last = GENESIS
        self._file_first = 1
        self._file_first_ts: float | None = None  # ts of the live file's first record; None while it is empty
        self._accepted: set[tuple[str, str]] = set()  # (action, request_id) ever accepted: ids are single-use
        self._retained: set[tuple[int, str]] = set()  # (last seq, last hash) of files removed by retention
        self._rotated: dict[Path, RotatedFile] = {}
        self.files_removed = 0  # by retention, since start
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            gap = self._recover()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise AuditError(f"audit log {path}: {exc.strerror or exc}") from None
        if gap is not None:
            self.append({"action": "audit_gap", "missing_from": gap[0], "missing_to": gap[1],
                         "reason": self.problem})

    @property
    def head(self) -> tuple[int, str]:
        with self._lock:
            return self._seq, self._last

    def _recover(self) -> tuple[int, int] | None:
        """Finds the chain head; drops a torn last line (a write cut by power loss was never acknowledged).
        Returns the missing seq range when the log lost entries its head says were written."""
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                log.warning("audit: dropping a torn last line (%d bytes) in %s", len(data) - cut, self.path)
                with open(self.path, "r+b") as f:
                    f.truncate(cut)
                    os.fsync(f.fileno())
            lines = [ln for ln in self.path.read_bytes().splitlines() if ln.strip()]
            if lines:
                try:
                    first = json.loads(lines[0])
                    self._file_first, self._file_first_ts = int(first["seq"]), float(first["ts"])
                except (ValueError, KeyError, TypeError):
                    self._file_first = 1
        files = log_files(self.path)
        for _, _, raw in _records(files):
            self._remember(raw)
        last = _last_line(files)
        if last is None and any(p.stat().st_size for p in files):
            log.error("audit: no readable record in %s; run 'edge-agent audit verify'", self.path)
        if last is not None:
            self._seq, self._last = last
        head = read_head(self.path)
        if head is not None and head[0] > self._seq:
            missing = (self._seq + 1, head[0])
            self.problem = (f"audit log {self.path} is missing entries {missing[0]}-{missing[1]} that were written "
                            "before (deleted or truncated); the chain continues from the recorded head")
            log.error("audit: %s", self.problem)
            self._seq, self._last = head
            if not self.path.exists() or self.path.stat().st_size == 0:
                self._file_first = self._seq + 1
            return missing
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._file_first = self._seq + 1
        return None

    def _remember(self, raw: bytes) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            self._note(json.loads(raw)["entry"])

    def _note(self, entry: dict[str, Any]) -> None:
        if entry.get("decision") == "accepted" and isinstance(entry.get("request_id"), str):
            self._accepted.add((str(entry.get("action")), entry["request_id"]))
        if entry.get("action") == RETENTION:
            self._retained.add((int(entry["last_seq"]), str(entry["last_hash"])))

    def was_accepted(self, action: str, request_id: str) -> bool:
        """Whether a request with this id was ever accepted (in any file of the log)."""
        with self._lock:
            return (action, request_id) in self._accepted

    def append(self, entry: dict[str, Any]) -> AuditRecord:
        with self._lock:
            seq, ts, prev = self._seq + 1, round(time.time(), 3), self._last
            digest = line_hash(seq, ts, prev, entry)
            sig = base64.b64encode(self._signer.sign(digest.encode("ascii"))).decode() if self._signer else ""
            rec = AuditRecord(seq, ts, prev, entry, digest, sig)
            line = canonical_json(rec.as_dict()) + b"\n"
            try:
                os.write(self._fd, line)
                os.fsync(self._fd)
            except OSError as exc:
                raise AuditError(f"audit log {self.path}: cannot append: {exc.strerror or exc}") from None
            self._seq, self._last = seq, digest
            if self._file_first_ts is None:
                self._file_first_ts = ts
            with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                self._note(entry)
            try:
                replace_file(head_path(self.path), canonical_json({"seq": seq, "hash": digest}), 0o640)
                if os.fstat(self._fd).st_size >= self._max_bytes:
                    self._rotate(seq)
            except OSError as exc:
                # The line itself is on disk: the head is only a cross-check, rewritten at the next append.
                log.error("audit: %s: %s", self.path, exc.strerror or exc)
            return rec

    def _rotate(self, last_seq: int) -> None:
        # Renamed while still open, closed only once the new file is: a failure never leaves no file to append to.
        os.replace(self.path, self.path.with_name(f"audit-{self._file_first:09d}.log"))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        os.close(self._fd)
        self._fd = fd
        self._file_first = last_seq + 1
        self._file_first_ts = None
        log.info("audit: rotated %s at seq %d; the chain carries on in a new file", self.path, last_seq)

    # -- retention (audit.keep_days) -------------------------------------------------------------

    def rotate_if_older(self, cutoff: float) -> bool:
        """Rotates the live file when its first record is older than ``cutoff``: retention deletes whole
        files, so a quiet node's single file would otherwise keep its oldest entries for ever."""
        with self._lock:
            if self._file_first_ts is None or self._file_first_ts >= cutoff:
                return False
            try:
                self._rotate(self._seq)
            except OSError as exc:
                raise AuditError(f"audit log {self.path}: cannot rotate: {exc.strerror or exc}") from None
            return True

    def _info(self, path: Path) -> RotatedFile | None:
        info = self._rotated.get(path)
        if info is None:
            info = _rotated_file(path)
            if info is not None:
                self._rotated[path] = info
        return info

    def expired_files(self, cutoff: float) -> list[RotatedFile]:
        """Rotated files, oldest first, whose newest record is older than ``cutoff``: only from the start of the
        chain, so what remains is always one unbroken stretch of it."""
        out = []
        for path in log_files(self.path):
            if path == self.path:
                break
            try:
                info = self._info(path)
            except OSError:
                break
            if info is None or info.newest_ts >= cutoff:
                break  # an unreadable file is not aged out: it is a problem for 'audit verify', kept as found
            out.append(info)
        return out

    def retention_recorded(self, f: RotatedFile) -> bool:
        """Whether a retention record vouching for ``f`` is already in the chain (a crash between writing it
        and deleting the file: the file goes without a second record)."""
        with self._lock:
            return (f.last_seq, f.last_hash) in self._retained

    def remove_rotated(self, f: RotatedFile) -> None:
        with self._lock:
            f.path.unlink(missing_ok=True)
            self._rotated.pop(f.path, None)
            self.files_removed += 1
        log.info("audit: %s (seq %d-%d) deleted: older than audit.keep_days", f.path.name, f.first_seq, f.last_seq)

    def oldest_ts(self) -> float | None:
        """Time of the oldest record still in the log (None when it is empty)."""
        for path in log_files(self.path):
            if path == self.path:
                with self._lock:
                    return self._file_first_ts
            try:
                info = self._info(path)
            except OSError:
                continue
            if info is not None:
                return info.first_ts
        return None

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    problem: str = ""
    last_seq: int = 0
    last_hash: str = GENESIS
    removed_to: int = 0  # entries 1..removed_to were deleted by retention, on record in...
    removed_record: int = 0  # ...the audit_retention record with this seq


def _retention_start(records: list[tuple[str, int, bytes]]) -> tuple[int, str, int] | None:
    """(first seq, its prev, seq of the record vouching for what came before) when the log starts after seq 1
    because retention removed its oldest files; None otherwise. The vouching record is one of ``records``, so
    the chain check that follows covers it (hash, link, signature) like any other line."""
    try:
        first = json.loads(records[0][2])
        seq, prev = int(first["seq"]), str(first["prev"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    if seq <= 1:
        return None
    for _, _, raw in records:
        if b'"' + RETENTION.encode() + b'"' not in raw:
            continue  # cheap skip: most lines are not retention records
        try:
            rec = json.loads(raw)
            entry = rec["entry"]
            if (entry.get("action") == RETENTION and int(entry["last_seq"]) == seq - 1
                    and str(entry["last_hash"]) == prev and int(rec["seq"]) >= seq):
                return seq, prev, int(rec["seq"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return None


def _records(files: list[Path]) -> Iterator[tuple[str, int, bytes]]:
    for path in files:
        for n, raw in enumerate(path.read_bytes().splitlines(), start=1):
            yield path.name, n, raw


def verify_file(path: Path, node_key: Ed25519PublicKey | None = None,
                head: tuple[int, str] | None = None) -> VerifyResult:
    """Checks the whole chain (rotated files, then ``path``): every line's hash, link and sequence, each
    signature when ``node_key`` is given, that the log reaches its own head file, and that it contains
    ``head`` (an entry the operations room received). The problem names the first bad line."""
    files = log_files(path)
    if not files:
        if head is not None or read_head(path) is not None:
            return VerifyResult(False, 0, f"{path}: the audit log is missing, but entries were recorded before")
        return VerifyResult(True, 0, "no audit log yet (nothing has been audited)")
    try:
        records = list(_records(files))
    except OSError as exc:
        return VerifyResult(False, 0, f"{path}: cannot read: {exc.strerror or exc}")
    prev, expected, n, seen_head = GENESIS, 1, 0, head is None
    removed_to = removed_record = 0
    start = _retention_start(records)
    if start is not None:
        expected, prev, removed_record = start
        removed_to = expected - 1
        if head is not None and head[0] <= removed_to:
            # The operations room's head is older than what retention removed: only the last removed entry's
            # hash is still known (the retention record names it).
            if head[0] == removed_to and head[1] != prev:
                return VerifyResult(False, 0, f"seq {head[0]} has hash {prev[:16]}… by the retention record, the "
                                    f"operations room received {head[1][:16]}… (history rewritten)")
            seen_head = True
    for name, lineno, raw in records:
        where = f"{name} line {lineno}"
        try:
            rec = json.loads(raw)
            seq, ts, entry, digest = int(rec["seq"]), float(rec["ts"]), rec["entry"], str(rec["hash"])
            linked, sig = str(rec["prev"]), rec.get("sig", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            return VerifyResult(False, n, f"{where}: not a valid audit record", expected - 1, prev)
        if not set(rec) <= _FIELDS or not isinstance(entry, dict):
            return VerifyResult(False, n, f"{where}: unexpected fields", expected - 1, prev)
        if seq != expected:
            gap = f"entries {expected}-{seq - 1} are missing" if seq > expected else "a line was removed or moved"
            return VerifyResult(False, n, f"{where}: seq is {seq}, expected {expected} ({gap})", expected - 1, prev)
        if linked != prev:
            return VerifyResult(False, n, f"{where} (seq {seq}): prev does not match the hash of the line before",
                                expected - 1, prev)
        if line_hash(seq, ts, linked, entry) != digest:
            return VerifyResult(False, n, f"{where} (seq {seq}): content does not match its hash (altered)",
                                expected - 1, prev)
        if node_key is not None:
            try:
                node_key.verify(base64.b64decode(str(sig), validate=True), digest.encode("ascii"))
            except (InvalidSignature, binascii.Error, ValueError):
                return VerifyResult(False, n, f"{where} (seq {seq}): not signed by the node key "
                                    "(rewritten, or a different node's key)", expected - 1, prev)
        if head is not None and seq == head[0]:
            if digest != head[1]:
                return VerifyResult(False, n, f"seq {seq} has hash {digest[:16]}…, the operations room received "
                                    f"{head[1][:16]}… (history rewritten)", expected - 1, prev)
            seen_head = True
        prev, expected, n = digest, seq + 1, n + 1
    if not seen_head and head is not None:
        return VerifyResult(False, n, f"the log ends at seq {expected - 1} but the operations room received seq "
                            f"{head[0]} (entries removed from the end)", expected - 1, prev)
    own = read_head(path)
    if own is not None and own[0] > expected - 1:
        return VerifyResult(False, n, f"the log ends at seq {expected - 1} but its head file says {own[0]} "
                            "entries were written (entries removed from the end)", expected - 1, prev)
    return VerifyResult(True, n, "", expected - 1, prev, removed_to, removed_record)
