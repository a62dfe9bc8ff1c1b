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
renamed ``audit-{first seq}.log`` and the chain carries on in a new ``audit.log``; rotated files are
kept (the log is evidence, kept for years: see ``audit.keep_days``). A log that is missing or shorter
than its head when the node starts is never a silent restart: the chain continues from the head, a
gap record is appended, and :attr:`AuditLog.problem` says what happened (health and log show it).
"""

from __future__ import annotations

import base64
import binascii
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

from edge_agent.atomic_file import replace_file
from edge_agent.signing import canonical_json

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD_SUFFIX = ".head.json"
_ROTATED = re.compile(r"^audit-(\d{9,})\.log$")
_FIELDS = {"seq", "ts", "prev", "entry", "hash", "sig"}


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
        self._accepted: set[tuple[str, str]] = set()  # (action, request_id) ever accepted: ids are single-use
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
                    self._file_first = int(json.loads(lines[0])["seq"])
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
        try:
            entry = json.loads(raw)["entry"]
            if entry.get("decision") == "accepted" and isinstance(entry.get("request_id"), str):
                self._accepted.add((str(entry.get("action")), entry["request_id"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass

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
            if entry.get("decision") == "accepted" and isinstance(entry.get("request_id"), str):
                self._accepted.add((str(entry.get("action")), entry["request_id"]))
            try:
                replace_file(head_path(self.path), canonical_json({"seq": seq, "hash": digest}), 0o640)
                if os.fstat(self._fd).st_size >= self._max_bytes:
                    self._rotate(seq)
            except OSError as exc:
                # The line itself is on disk: the head is only a cross-check, rewritten at the next append.
                log.error("audit: %s: %s", self.path, exc.strerror or exc)
            return rec

    def _rotate(self, last_seq: int) -> None:
        os.close(self._fd)
        os.replace(self.path, self.path.with_name(f"audit-{self._file_first:09d}.log"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._file_first = last_seq + 1
        log.info("audit: rotated %s at seq %d; the chain carries on in a new file", self.path, last_seq)

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
    return VerifyResult(True, n, "", expected - 1, prev)
