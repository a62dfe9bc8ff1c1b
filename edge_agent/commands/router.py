"""Commands from the operations room (``cmd/{name}``), answered on ``reply/{request_id}``.

Every payload is hostile until checked: its size is checked in :meth:`CommandRouter.submit` before it is
queued (on the MQTT network thread, which must never do more), then it is parsed inside a catch-all on
the ``commands`` thread behind a bounded queue, so a flood can neither block the network loop nor grow
memory; what does not fit is dropped and counted. Each command name has one handler.

Signed commands (``clip``, ``hotlist``, ``config``) are verified by their handlers; every refusal of one
is put on record through an :class:`AuditSink`: a refusal before the signature and freshness checks
passed (:class:`Unverified`: junk, forgeries, replays) is only counted, so a flood of them cannot fill
the evidence log, and any other refusal gets its own record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.core.types import Command, CommandRejected, PipelineStats, Unverified

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_COMMAND_BYTES = 64 * 1024
MAX_NESTING = 32  # a real command nests 3 deep (hotlist plates); json recurses once per level
_WARN_EVERY_S = 10.0
# Replies to refusals anyone can provoke (junk, forgeries, replays) share the link with plate events:
# past this rate they are counted, not sent, so a flood cannot queue thousands of replies ahead of plates.
REFUSAL_REPLIES_PER_S = 10.0
REFUSAL_REPLY_BURST = 30.0


class AuditSink(Protocol):
    def refused(self, command: str, request_id: str | None, body: dict[str, Any], reason: str) -> None: ...

    def refused_unverified(self, command: str, reason: str) -> None: ...


class DecisionSink(Protocol):
    """Where a signed command's handler puts its outcome on record (edge_agent.footage.audit_trail.AuditTrail)."""

    def decision(self, command: str, decision: str, request_id: str | None, body: dict[str, Any],
                 **extra: Any) -> Any: ...


Handler = Callable[[Command], dict[str, Any]]
Replier = Callable[[str, dict[str, Any]], None]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            # Two parsers could read different values from one signed text: refuse, never pick one.
            raise ValueError(f"duplicate key {k[:64]!r}")
        out[k] = v
    return out


def _nesting(payload: bytes) -> int:
    """Deepest bracket nesting (brackets in strings count too: an over-estimate, which is safe)."""
    if payload.count(b"[") + payload.count(b"{") <= MAX_NESTING:
        return 0
    depth = deepest = 0
    for ch in payload:
        if ch in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif ch in (0x5D, 0x7D):
            depth = max(depth - 1, 0)
    return deepest


def parse_command(payload: bytes) -> dict[str, Any]:
    """A command payload as a JSON object with a valid ``request_id``; Unverified(reason) otherwise.

    Catches everything the parser can raise (huge integers raise a plain ValueError, deep nesting a
    RecursionError, bad UTF-8 a UnicodeDecodeError): no payload may escape as an exception.
    """
    if len(payload) > MAX_COMMAND_BYTES:
        raise Unverified(f"payload larger than {MAX_COMMAND_BYTES} bytes")
    if _nesting(payload) > MAX_NESTING:
        raise Unverified(f"malformed JSON: nested more than {MAX_NESTING} levels")
    try:
        body = json.loads(payload, object_pairs_hook=_no_duplicates)
    except Exception as exc:  # any parser failure is a refusal, never a dead thread
        raise Unverified(f"malformed JSON: {str(exc)[:120]}") from None
    if not isinstance(body, dict):
        raise Unverified("payload must be a JSON object")
    rid = body.get("request_id")
    if not isinstance(rid, str) or not _REQUEST_ID.fullmatch(rid):
        raise Unverified("request_id missing or not 1-64 of [A-Za-z0-9_.-]")
    return body


class CommandRouter:
    def __init__(self, stats: PipelineStats, maxsize: int = 32) -> None:
        self._stats = stats
        self._handlers: dict[str, Handler] = {}
        self._signed: set[str] = set()
        self._audit: AuditSink | None = None
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize)
        self._reply: Replier | None = None
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)
        self._last_warning = 0.0
        self._quiet = 0
        self._tokens = REFUSAL_REPLY_BURST
        self._refilled = time.monotonic()

    def _may_answer_refusal(self) -> bool:
        now = time.monotonic()
        self._tokens = min(REFUSAL_REPLY_BURST, self._tokens + (now - self._refilled) * REFUSAL_REPLIES_PER_S)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def register(self, name: str, handler: Handler, signed: bool = False) -> None:
        self._handlers[name] = handler
        if signed:
            self._signed.add(name)

    def set_audit(self, sink: AuditSink) -> None:
        self._audit = sink

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self, reply: Replier) -> None:
        self._reply = reply
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(2.0)

    def submit(self, name: str, payload: bytes) -> None:
        """Called from the MQTT thread; never blocks, never raises, queues nothing oversized."""
        try:
            self._stats.commands_received += 1
            if len(payload) > MAX_COMMAND_BYTES:
                # Checked before queueing: a queue of 32 payloads of 40 MB each would be 1.3 GB.
                self._stats.commands_oversized += 1
                self._refuse_unverified(name, f"payload larger than {MAX_COMMAND_BYTES} bytes")
                return
            try:
                self._queue.put_nowait((name, payload))
            except queue.Full:
                self._stats.commands_dropped += 1
                self._warn("commands: queue full, dropped cmd/%s", name[:64])
        except Exception:  # the network thread must survive whatever arrives
            self._stats.callback_errors += 1
            log.exception("commands: submit failed")

    def handle(self, name: str, payload: bytes) -> tuple[str | None, dict[str, Any]]:
        """Parses and runs one command; returns (request_id or None, reply)."""
        rid, reply, _ = self._handle(name, payload)
        return rid, reply

    def _handle(self, name: str, payload: bytes) -> tuple[str | None, dict[str, Any], bool]:
        """(request_id or None, reply, whether it is a refusal anyone could have provoked)."""
        try:
            body = parse_command(payload)
        except Unverified as exc:
            return None, self._reject(name, str(exc), None, None), True
        rid: str = body["request_id"]
        handler = self._handlers.get(name)
        if handler is None:
            return rid, self._reject(name, f"unknown command {name[:64]!r}; known: {sorted(self._handlers)}", rid,
                                     None), True
        try:
            result = handler(Command(name, rid, body))
        except CommandRejected as exc:
            unverified = isinstance(exc, Unverified)
            return rid, self._reject(name, str(exc), rid, None if unverified else body), unverified
        except Exception:
            log.exception("commands: handler for cmd/%s failed", name)
            return rid, self._reject(name, "internal error while handling the command", rid, body), False
        return rid, {"request_id": rid, "command": name, "ok": True, **result}, False

    def _reject(self, name: str, reason: str, rid: str | None, verified_body: dict[str, Any] | None) -> dict[str, Any]:
        """``verified_body`` is the body of a command whose signature checks passed, else None."""
        self._stats.commands_rejected += 1
        if verified_body is not None and name in self._signed:
            self._warn("commands: refused cmd/%s %s: %s", name[:64], rid, reason)
            if self._audit is not None:
                self._audit.refused(name, rid, verified_body, reason)
        else:
            self._refuse_unverified(name, reason)
        return {"request_id": rid, "command": name[:64], "ok": False, "error": reason}

    def _refuse_unverified(self, name: str, reason: str) -> None:
        self._warn("commands: rejected cmd/%s: %s", name[:64], reason)
        if self._audit is not None and name in self._signed:
            self._audit.refused_unverified(name, reason)

    def _warn(self, fmt: str, *args: Any) -> None:
        # A flood of junk must not become a flood of log lines: one line per interval, with a count.
        now = time.monotonic()
        if now - self._last_warning < _WARN_EVERY_S:
            self._quiet += 1
            return
        if self._quiet:
            log.warning("commands: %d more refusals/drops not logged in the last %.0f s", self._quiet,
                        now - self._last_warning)
            self._quiet = 0
        self._last_warning = now
        log.warning(fmt, *args)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                rid, reply, unverified = self._handle(*item)
                if rid is None or self._reply is None:
                    continue
                if unverified and not self._may_answer_refusal():
                    self._stats.commands_unanswered += 1
                    continue
                self._reply(rid, reply)
            except Exception:  # one bad command (or a failed reply) must not end the thread
                self._stats.command_errors += 1
                log.exception("commands: error while answering cmd/%s", item[0][:64])
