"""Hotlists: plates the operations room is looking for, pushed over MQTT (``cmd/hotlist``, signed).

Lists are kept on disk (one JSON file, replaced atomically) so they survive
restarts and link outages. A published plate that matches a list raises an
``events/alert`` that the outbox sends ahead of its backlog.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from edge_agent.commands.router import DecisionSink
from edge_agent.core.formats import edit_distance_at_most_1
from edge_agent.core.types import Command, CommandRejected, HotlistMatch, Unverified

log = logging.getLogger(__name__)

_LIST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PLATE = re.compile(r"^[A-Z0-9]{2,12}$")
MAX_ENTRIES = 100_000
_ACTIONS = ("replace", "add", "remove", "delete")
_ALLOWED_KEYS = {"request_id", "node_id", "command", "list_id", "action", "plates", "key_id", "nonce", "expires",
                 "signature", "issued"}


class CommandVerifier(Protocol):
    def verify(self, body: dict[str, Any], now: float, *, command: str, fleet: bool = False) -> str: ...


def normalise(text: str) -> str:
    return re.sub(r"[\s\-]", "", text).upper()


class Hotlists:
    def __init__(self, path: Path, fuzzy: bool) -> None:
        self._path = path
        self._fuzzy = fuzzy
        self._lock = threading.Lock()
        self._lists: dict[str, dict[str, str]] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                self._lists = {str(k): {str(p): str(r) for p, r in v.items()} for k, v in raw["lists"].items()}
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                # Keep the bad file for inspection; running with no list beats not running.
                bad = path.with_suffix(".corrupt")
                os.replace(path, bad)
                log.error("hotlist: %s unreadable (%s); moved to %s, starting with no lists", path, exc, bad)

    @property
    def sizes(self) -> dict[str, int]:
        with self._lock:
            return {k: len(v) for k, v in self._lists.items()}

    def match(self, text: str) -> HotlistMatch | None:
        found = self._match(text)
        if found is not None:
            # Said at WARNING without the plate: logs outlive privacy.max_age_days (the text is in the alert,
            # and at DEBUG).
            log.warning("hotlist: a plate matches list %s (%s)", found.list_id, found.kind)
        return found

    def _match(self, text: str) -> HotlistMatch | None:
        with self._lock:
            for list_id, plates in self._lists.items():
                reason = plates.get(text)
                if reason is not None:
                    return HotlistMatch(list_id, text, reason, "exact")
            if self._fuzzy:
                for list_id, plates in self._lists.items():
                    for listed, reason in plates.items():
                        if edit_distance_at_most_1(listed, text):
                            return HotlistMatch(list_id, listed, reason, "fuzzy")
        return None

    def _save(self) -> None:
        tmp = self._path.with_suffix(".tmp")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"lists": self._lists, "saved": time.time()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)

    def apply(self, list_id: str, action: str, entries: dict[str, str]) -> int:
        with self._lock:
            current = dict(self._lists.get(list_id, {}))
            if action == "replace":
                current = entries
            elif action == "add":
                current.update(entries)
            elif action == "remove":
                for p in entries:
                    current.pop(p, None)
            if action == "delete" or not current:
                self._lists.pop(list_id, None)
            else:
                if len(current) > MAX_ENTRIES:
                    raise CommandRejected(f"list {list_id} would hold {len(current)} plates, more than {MAX_ENTRIES}")
                self._lists[list_id] = current
            self._save()
            return len(self._lists.get(list_id, {}))


def _entries(raw: Any) -> dict[str, str]:
    if not isinstance(raw, list):
        raise CommandRejected("plates must be a list of plate texts or {text, reason} objects")
    if len(raw) > MAX_ENTRIES:
        raise CommandRejected(f"too many plates ({len(raw)} > {MAX_ENTRIES})")
    out: dict[str, str] = {}
    for i, item in enumerate(raw):
        if isinstance(item, str):
            text, reason = item, ""
        elif isinstance(item, dict) and isinstance(item.get("text"), str) and set(item) <= {"text", "reason"}:
            text, reason = item["text"], item.get("reason", "")
            if not isinstance(reason, str) or len(reason) > 200:
                raise CommandRejected(f"plates[{i}].reason must be a string of at most 200 characters")
        else:
            raise CommandRejected(f"plates[{i}] must be a plate text or {{text, reason}}")
        text = normalise(text)
        if not _PLATE.match(text):
            raise CommandRejected(f"plates[{i}] {text[:20]!r} is not a plate text (2-12 of A-Z 0-9)")
        out[text] = reason
    return out


class HotlistCommand:
    """The ``cmd/hotlist`` handler: verify the signature, validate, apply, persist."""

    def __init__(self, hotlists: Hotlists, verifier: CommandVerifier, audit: DecisionSink | None = None) -> None:
        self._hotlists = hotlists
        self._verifier = verifier
        self._audit = audit

    def __call__(self, cmd: Command) -> dict[str, Any]:
        body = cmd.body
        unexpected = set(body) - _ALLOWED_KEYS
        if unexpected:
            raise Unverified(f"unexpected field(s): {sorted(unexpected)[:5]}")
        # A hotlist may be meant for the whole fleet (node_id "*"); it is still bound to cmd/hotlist.
        key_id = self._verifier.verify(body, time.time(), command="hotlist", fleet=True)
        list_id, action = body.get("list_id"), body.get("action")
        if not isinstance(list_id, str) or not _LIST_ID.fullmatch(list_id):
            raise CommandRejected("list_id missing or not 1-64 of [A-Za-z0-9_.-]")
        if action not in _ACTIONS:
            raise CommandRejected(f"action must be one of {list(_ACTIONS)}")
        entries = _entries(body.get("plates", [])) if action != "delete" else {}
        size = self._hotlists.apply(list_id, action, entries)
        if self._audit is not None:
            self._audit.decision("hotlist", "accepted", cmd.request_id, body, plates=len(entries), entries=size)
        log.info("hotlist: %s %s by key %s: %d plates now", action, list_id, key_id, size)
        return {"list_id": list_id, "action": action, "entries": size}
