# SPDX-License-Identifier: Apache-2.0
"""The audit log: an append-only, hash-chained record of every signed request and its outcome.

One JSON object per line: ``{"seq", "ts", "prev", "entry", "hash"}``, where ``hash`` is the SHA-256
of the canonical JSON of the line without ``hash`` and ``prev`` is the previous line's ``hash``
(64 zeros for the first). Changing, removing or reordering any line breaks every hash after it,
which ``edge-agent audit verify`` detects. Each line is fsynced before the append returns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.signing import canonical_json

log = logging.getLogger(__name__)

GENESIS = "0" * 64


class AuditError(Exception):
    """The audit log cannot be opened or written; the message says why."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    ts: float
    prev: str
    entry: dict[str, Any]
    hash: str


def _line_hash(seq: int, ts: float, prev: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"seq": seq, "ts": ts, "prev": prev, "entry": entry})).hexdigest()


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seq = 0
        self._last = GENESIS
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._recover()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise AuditError(f"audit log {path}: {exc.strerror or exc}") from None

    def _recover(self) -> None:
        """Finds the chain head; drops a torn last line (a write cut by power loss was never acknowledged)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            log.warning("audit: dropping a torn last line (%d bytes) in %s", len(data) - cut, self.path)
            with open(self.path, "r+b") as f:
                f.truncate(cut)
                os.fsync(f.fileno())
            data = data[:cut]
        lines = data.splitlines()
        if lines:
            try:
                last = json.loads(lines[-1])
                self._seq, self._last = int(last["seq"]), str(last["hash"])
            except (ValueError, KeyError, TypeError):
                # Keep appending after a damaged line: verify names it; refusing to log would lose evidence.
                log.error("audit: last line of %s is damaged; run 'edge-agent audit verify'", self.path)
                self._seq = len(lines)

    def append(self, entry: dict[str, Any]) -> AuditRecord:
        with self._lock:
            seq, ts, prev = self._seq + 1, round(time.time(), 3), self._last
            digest = _line_hash(seq, ts, prev, entry)
            line = canonical_json({"seq": seq, "ts": ts, "prev": prev, "entry": entry, "hash": digest}) + b"\n"
            try:
                os.write(self._fd, line)
                os.fsync(self._fd)
            except OSError as exc:
                raise AuditError(f"audit log {self.path}: cannot append: {exc.strerror or exc}") from None
            self._seq, self._last = seq, digest
            return AuditRecord(seq, ts, prev, entry, digest)

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    problem: str = ""


def verify_file(path: Path) -> VerifyResult:
    """Checks every line's hash and link; the problem names the first bad line (1-based)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return VerifyResult(False, 0, f"{path}: no audit log")
    except OSError as exc:
        return VerifyResult(False, 0, f"{path}: cannot read: {exc.strerror or exc}")
    prev = GENESIS
    n = 0
    for n, raw in enumerate(data.splitlines(), start=1):
        try:
            rec = json.loads(raw)
            seq, ts, entry, digest = int(rec["seq"]), float(rec["ts"]), rec["entry"], str(rec["hash"])
            linked = str(rec["prev"])
        except (ValueError, KeyError, TypeError):
            return VerifyResult(False, n - 1, f"line {n}: not a valid audit record")
        if set(rec) != {"seq", "ts", "prev", "entry", "hash"} or not isinstance(entry, dict):
            return VerifyResult(False, n - 1, f"line {n}: unexpected fields")
        if seq != n:
            return VerifyResult(False, n - 1, f"line {n}: seq is {seq}, expected {n} (a line was removed or moved)")
        if linked != prev:
            return VerifyResult(False, n - 1, f"line {n} (seq {seq}): prev does not match the hash of line {n - 1}")
        if _line_hash(seq, ts, linked, entry) != digest:
            return VerifyResult(False, n - 1, f"line {n} (seq {seq}): content does not match its hash (altered)")
        prev = digest
    return VerifyResult(True, n)
