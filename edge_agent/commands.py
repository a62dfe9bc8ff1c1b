"""Commands from the operations room (``cmd/{name}``), answered on ``reply/{request_id}``.

Commands are parsed and answered on their own thread behind a bounded queue, so a
flood of commands can neither block the MQTT network loop nor grow memory; what
does not fit is dropped and counted. Each command name has one handler; later
capabilities (clip requests, hotlists) register theirs here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.health import PipelineStats

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_COMMAND_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    request_id: str
    body: dict[str, Any]


class CommandRejected(Exception):
    """The command is understood but refused; the message is the reason sent back."""


Handler = Callable[[Command], dict[str, Any]]
Replier = Callable[[str, dict[str, Any]], None]


class CommandRouter:
    def __init__(self, stats: PipelineStats, maxsize: int = 32) -> None:
        self._stats = stats
        self._handlers: dict[str, Handler] = {}
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize)
        self._reply: Replier | None = None
        self._thread = threading.Thread(target=self._run, name="commands", daemon=True)

    def register(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    def start(self, reply: Replier) -> None:
        self._reply = reply
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(2.0)

    def submit(self, name: str, payload: bytes) -> None:
        """Called from the MQTT thread; never blocks."""
        self._stats.commands_received += 1
        try:
            self._queue.put_nowait((name, payload))
        except queue.Full:
            self._stats.commands_dropped += 1
            log.warning("commands: queue full, dropped cmd/%s", name[:64])

    def handle(self, name: str, payload: bytes) -> tuple[str | None, dict[str, Any]]:
        """Parses and runs one command; returns (request_id or None, reply)."""
        if len(payload) > MAX_COMMAND_BYTES:
            return None, self._reject(name, f"payload larger than {MAX_COMMAND_BYTES} bytes")
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            return None, self._reject(name, f"malformed JSON: {exc}")
        if not isinstance(body, dict):
            return None, self._reject(name, "payload must be a JSON object")
        rid = body.get("request_id")
        if not isinstance(rid, str) or not _REQUEST_ID.fullmatch(rid):
            return None, self._reject(name, "request_id missing or not 1-64 of [A-Za-z0-9_.-]")
        handler = self._handlers.get(name)
        if handler is None:
            return rid, self._reject(name, f"unknown command {name[:64]!r}; known: {sorted(self._handlers)}", rid)
        try:
            result = handler(Command(name, rid, body))
        except CommandRejected as exc:
            return rid, self._reject(name, str(exc), rid)
        except Exception:
            log.exception("commands: handler for cmd/%s failed", name)
            return rid, self._reject(name, "internal error while handling the command", rid)
        return rid, {"request_id": rid, "command": name, "ok": True, **result}

    def _reject(self, name: str, reason: str, rid: str | None = None) -> dict[str, Any]:
        self._stats.commands_rejected += 1
        log.warning("commands: rejected cmd/%s: %s", name[:64], reason)
        return {"request_id": rid, "command": name[:64], "ok": False, "error": reason}

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            rid, reply = self.handle(*item)
            if rid is not None and self._reply is not None:
                self._reply(rid, reply)
