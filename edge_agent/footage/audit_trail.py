# SPDX-License-Identifier: Apache-2.0
"""What goes on record: every signed command (``clip``, ``hotlist``, ``config``), its outcome and every
refusal, written to the audit log (:mod:`edge_agent.footage.audit`) and sent to the operations room as
``events/audit``, which the outbox never drops.

Refusals of commands whose signature and freshness did not check out (junk, forgeries, replays: anyone
on the broker can send them) are aggregated: one ``refusals`` record per ``audit.refusal_summary_s`` with
counts by command and reason, so a flood cannot fill the evidence log or starve plate delivery. Every
other decision gets a record of its own.

The log holds requests, not footage or plates, and is kept ``audit.keep_days`` (5 years, DPR 15/2018
art. 24), longer than anything else on the pole; :meth:`AuditTrail.enforce_retention` then deletes its
oldest files, each after an ``audit_retention`` record says which (:mod:`edge_agent.footage.audit`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge_agent.core.types import PRIORITY_AUDIT, Event, utc_iso
from edge_agent.footage.audit import RETENTION, ROTATE_AFTER_S, AuditError, AuditLog, AuditRecord

log = logging.getLogger(__name__)

Publish = Callable[[Event], None]
_MAX_REASONS = 20  # distinct reasons kept per summary; the rest are counted as "other"
_COPIED = ("camera", "start", "end", "agency", "purpose", "operator", "key_id", "nonce", "list_id", "action",
           "node_id", "command")


def _safe(value: Any) -> Any:
    # JSON text may carry lone surrogates, which UTF-8 (the audit log) cannot: keep them, escaped.
    return value.encode("utf-8", "backslashreplace").decode() if isinstance(value, str) else value


def audit_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "audit.log"


def request_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The parts of a signed command body worth keeping: never the token, never a full upload URL."""
    out: dict[str, Any] = {}
    for name in _COPIED:
        value = body.get(name)
        if isinstance(value, str):
            out["list_action" if name == "action" else name] = value[:128]
    url = body.get("upload_url")
    if isinstance(url, str):
        # Host only: paths and queries of upload URLs may carry credentials.
        with contextlib.suppress(ValueError):
            out["upload_host"] = urlsplit(url).netloc.rpartition("@")[2][:128]
    return out


def _reason_class(reason: str) -> str:
    """The reason without the attacker-chosen details (key ids, parser positions)."""
    return reason.split(":", 1)[0].split("'", 1)[0].strip()[:80] or "refused"


class AuditTrail:
    def __init__(self, log_: AuditLog, publish: Publish, summary_interval_s: float = 60.0) -> None:
        self.log = log_
        self._publish = publish
        self._interval = summary_interval_s
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._since: float | None = None
        self.records = 0
        self.failures = 0
        self.keep_days: float | None = None  # as last enforced

    def record(self, entry: dict[str, Any]) -> AuditRecord | None:
        """Appends and publishes one record; None (logged, counted) when the log cannot be written."""
        entry = {k: _safe(v) for k, v in entry.items()}
        try:
            rec = self.log.append(entry)
        except AuditError as exc:
            self.failures += 1
            log.error("%s", exc)
            return None
        self.records += 1
        self._publish(Event("audit", {"audit_seq": rec.seq, "audit_ts": rec.ts, "prev_hash": rec.prev,
                                      "audit_hash": rec.hash, "audit_sig": rec.sig, "entry": rec.entry},
                            PRIORITY_AUDIT))
        return rec

    def decision(self, command: str, decision: str, request_id: str | None, body: dict[str, Any],
                 **extra: Any) -> AuditRecord | None:
        return self.record({"action": _action(command), "decision": decision, "request_id": request_id,
                            **request_fields(body), **extra})

    # -- the command router's AuditSink -----------------------------------------------------------

    def refused(self, command: str, request_id: str | None, body: dict[str, Any], reason: str) -> None:
        self.decision(command, "refused", request_id, body, reason=reason[:300])

    def refused_unverified(self, command: str, reason: str) -> None:
        with self._lock:
            if self._since is None:
                self._since = time.time()
            key = f"{command[:32]}: {_reason_class(reason)}"
            if key not in self._counts and len(self._counts) >= _MAX_REASONS:
                key = f"{command[:32]}: other"
            self._counts[key] += 1

    def tick(self, now: float | None = None, force: bool = False) -> None:
        """Writes the summary of unverified refusals once per interval (and when stopping: ``force``)."""
        now = time.time() if now is None else now
        with self._lock:
            if self._since is None or (not force and now - self._since < self._interval):
                return
            counts, since = dict(self._counts), self._since
            self._counts.clear()
            self._since = None
        self.record({"action": "refusals", "decision": "refused", "since": utc_iso(since), "until": utc_iso(now),
                     "total": sum(counts.values()), "counts": dict(sorted(counts.items())),
                     "note": "commands refused before their signature and freshness checked out"})

    def enforce_retention(self, keep_days: float, now: float | None = None) -> int:
        """Deletes the rotated files whose newest record is older than ``keep_days``, oldest first, each only
        once a record of its removal (seq range, last hash) is in the chain; returns how many went."""
        now = time.time() if now is None else now
        self.keep_days = keep_days
        keep_s = keep_days * 86400
        removed = 0
        try:
            self.log.rotate_if_older(now - min(keep_s, ROTATE_AFTER_S))
        except AuditError as exc:
            log.error("%s", exc)
        for f in self.log.expired_files(now - keep_s):
            if not self.log.retention_recorded(f):
                rec = self.record({"action": RETENTION, "decision": "removed", "file": f.path.name,
                                   "first_seq": f.first_seq, "last_seq": f.last_seq, "last_hash": f.last_hash,
                                   "newest": utc_iso(f.newest_ts), "keep_days": keep_days})
                if rec is None:
                    break  # nothing goes unless its removal is on record
            try:
                self.log.remove_rotated(f)
            except OSError as exc:
                log.error("audit: cannot delete %s: %s", f.path, exc.strerror or exc)
                break
            removed += 1
        return removed

    def health(self) -> dict[str, Any]:
        seq, digest = self.log.head
        with self._lock:
            pending = sum(self._counts.values())
        oldest = self.log.oldest_ts()
        return {"state": f"broken: {self.log.problem}" if self.log.problem else "ok", "seq": seq, "hash": digest,
                "records": self.records, "write_failures": self.failures, "refusals_not_yet_summarised": pending,
                "keep_days": self.keep_days,
                "oldest_age_s": None if oldest is None else round(max(0.0, time.time() - oldest), 1),
                "files_removed_by_retention": self.log.files_removed}


def _action(command: str) -> str:
    # "clip_request" is what audit logs written before other commands were audited call it.
    return "clip_request" if command == "clip" else command[:32]
