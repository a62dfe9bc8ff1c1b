"""The small types every layer shares, at the bottom of the package so that imports run one way.

What crosses the layers: the :class:`Event` a stage emits and the link publishes, the :class:`Command`
the link receives and the command handlers answer (and their refusals), a hotlist
:class:`HotlistMatch`, and the :class:`PipelineStats` counters every stage updates and health
publishes. This module imports nothing from edge_agent.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# -- events ------------------------------------------------------------------------------------------

# Lower priorities are dropped first when the outbox is full (docs/mqtt.md, "Outbox").
PRIORITY_MOTION = 0
PRIORITY_PLATE = 1
PRIORITY_ALERT = 2  # published ahead of the backlog (Outbox.pending_urgent)
PRIORITY_AUDIT = 3  # ahead of the backlog too, and never dropped by the outbox's bounds: it is evidence


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    payload: dict[str, Any]
    priority: int = PRIORITY_MOTION
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ts: str = field(default_factory=lambda: utc_iso(time.time()))

    def envelope(self, node_id: str, seq: int) -> dict[str, Any]:
        return {"event_id": self.event_id, "node_id": node_id, "seq": seq, "ts": self.ts, "type": self.type,
                **self.payload}


# -- commands ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    request_id: str
    body: dict[str, Any]


class CommandRejected(Exception):
    """The command is understood but refused; the message is the reason sent back."""


class Unverified(CommandRejected):
    """Refused before the signature, key, expiry, binding and nonce checks all passed: anyone can send
    these, so they are counted in the audit log, not recorded one by one."""


@dataclass(frozen=True, slots=True)
class HotlistMatch:
    list_id: str
    listed_text: str
    reason: str
    kind: str  # "exact" or "fuzzy"


# -- counters ----------------------------------------------------------------------------------------


@dataclass
class PipelineStats:
    """Counters written by one thread each (plain int updates are atomic enough under the GIL)."""

    frames_in: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    motion_frames: int = 0
    alpr_runs: int = 0
    plates_read: int = 0
    plates_published: int = 0
    alpr_errors: int = 0
    plates_repeated: int = 0
    plates_discarded: int = 0
    hotlist_alerts: int = 0
    motion_ms: float = 0.0
    inference_ms: float = 0.0
    events_lost: int = 0
    events_held: int = 0
    camera_state: str = "starting"
    camera_error: str = ""
    camera_reconnects: int = 0
    link_state: str = "connecting"
    link_reconnects: int = 0
    link_protocol: str = ""
    link_subscription: str = "pending"  # the broker's answer to the cmd subscription: granted / refused: <reason>
    link_publish_refused: int = 0  # PUBACKs with a reason code >= 0x80 (MQTT 5 only)
    link_last_refusal: dict[str, str] | None = None  # {"topic", "reason", "at"} of the latest one
    commands_received: int = 0
    commands_rejected: int = 0
    commands_dropped: int = 0
    commands_oversized: int = 0
    commands_unanswered: int = 0  # refusals of unverified commands past the reply rate
    command_errors: int = 0  # exceptions caught at the commands thread boundary
    callback_errors: int = 0  # exceptions caught in MQTT callbacks (the network thread survives them)
    dead_threads: list[str] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def ema(old: float, new: float, k: float = 0.1) -> float:
    return new if old == 0.0 else old + k * (new - old)
