# SPDX-License-Identifier: Apache-2.0
"""Wires the footage features into the agent: the recorder (ring buffer, retention, event clips) and
the ``cmd/clip`` service (signed requests, audit log, signed manifests, resumable uploads).

The agent holds one :class:`Footage` (or None when ``recorder.enabled`` is false) and touches it at
four points: every captured frame (``offer``), every stored event (``on_event``), the command intake
(``screen``) and health (``health``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent.audit import AuditError, AuditLog
from edge_agent.clips.service import ClipService, Publish, Reply
from edge_agent.clips.upload import Uploader, UploadSettings
from edge_agent.commands import MAX_COMMAND_BYTES
from edge_agent.config import Config
from edge_agent.recorder import EncoderSettings, Recorder, RetentionPolicy
from edge_agent.signing import KeyFileError, SignedCommandVerifier, load_or_create_node_key
from edge_agent.sources.base import Frame

CommandSink = Callable[[str, bytes], None]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # as commands.py: what the router can answer


class FootageError(Exception):
    """The footage features cannot start; the message says why."""


def audit_path(cfg: Config) -> Path:
    return Path(cfg.data_dir) / "audit.log"


def node_key_path(cfg: Config) -> Path:
    # Same file name as 'edge-agent provision' writes, so a provisioned key and a generated one look alike.
    return cfg.security.node_key_file or Path(cfg.data_dir) / "keys" / "node-signing.key"


class Footage:
    def __init__(self, cfg: Config, publish: Publish, verifier: SignedCommandVerifier) -> None:
        rc, data = cfg.recorder, Path(cfg.data_dir)
        self.cfg = cfg
        settings = EncoderSettings(codec=rc.codec, crf=rc.crf, preset=rc.preset,
                                   gop_frames=max(1, round(rc.keyframe_interval_s * cfg.camera.fps)))
        try:
            self.recorder = Recorder(data / "footage", settings, rc.segment_s,
                                     RetentionPolicy(rc.max_age_days * 86400, int(rc.max_disk_mb * 2**20)),
                                     rc.retention_interval_s, rc.queue_frames)
            self.audit = AuditLog(audit_path(cfg))
            node_key = load_or_create_node_key(node_key_path(cfg))
        except (OSError, AuditError, KeyFileError) as exc:
            raise FootageError(f"footage: {exc}") from None
        up = cfg.upload
        uploader = Uploader(UploadSettings(up.max_kbps, up.chunk_kb * 1024, up.timeout_s, up.retry_min_s,
                                           up.retry_max_s, up.give_up_after_s, up.ca_file))
        self.clips = ClipService(node_id=cfg.node_id, camera_id=rc.camera_id, recorder=self.recorder,
                                 audit=self.audit, verifier=verifier, node_key=node_key, uploader=uploader,
                                 work_dir=data / "clips", publish=publish, max_clip_s=cfg.clips.max_clip_s,
                                 max_pending=cfg.clips.max_pending,
                                 wait_for_footage_s=max(cfg.clips.wait_for_footage_s, rc.segment_s),
                                 progress_interval_s=up.progress_interval_s, allow_http=up.allow_http,
                                 give_up_after_s=up.give_up_after_s)
        self.uploader = uploader

    def start(self, reply: Reply) -> None:
        self.recorder.start()
        self.clips.start(reply)

    def stop(self) -> None:
        self.clips.stop()
        self.recorder.stop()
        self.audit.close()

    def router_reply(self, reply: Reply) -> Reply:
        """The replier to give the command router (accepted replies go out before the job starts)."""
        return self.clips.after_reply(reply)

    def offer(self, frame: Frame) -> None:
        self.recorder.offer(frame)

    def on_event(self, event: Any) -> None:
        """Schedules an event clip around each plate event (the vehicle's whole pass, when the event says
        when it was first and last seen) when ``recorder.event_clips`` is on."""
        rc = self.cfg.recorder
        if not rc.event_clips or getattr(event, "type", None) != "plate":
            return
        p = event.payload
        seen = _ts(p.get("frame_ts")) or time.time()
        first, last = _ts(p.get("first_seen")) or seen, _ts(p.get("last_seen")) or seen
        self.recorder.schedule_event_clip(event.event_id, first, last, rc.event_pre_roll_s, rc.event_post_roll_s)

    def screen(self, submit: CommandSink) -> CommandSink:
        """Wraps the command intake so a cmd/clip the router cannot answer (not JSON) is still audited."""

        def sink(name: str, payload: bytes) -> None:
            if name == "clip":
                reason = _unanswerable(payload)
                if reason is not None:
                    self.clips.audit_malformed(payload, reason)
            submit(name, payload)

        return sink

    def health(self) -> dict[str, Any]:
        s = self.clips.stats
        return {"footage": self.recorder.footage(time.time()),
                "uploads": {"pending": s.pending, "active": s.active, "done": s.done, "failed": s.failed,
                            "bytes_sent": self.uploader.bytes_sent}}


def _ts(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _unanswerable(payload: bytes) -> str | None:
    if len(payload) > MAX_COMMAND_BYTES:
        return f"payload larger than {MAX_COMMAND_BYTES} bytes"
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return f"malformed JSON: {exc}"[:200]
    if not isinstance(body, dict):
        return "malformed JSON: payload must be a JSON object"
    rid = body.get("request_id")
    if not isinstance(rid, str) or not _REQUEST_ID.fullmatch(rid):
        return "malformed request: request_id missing or not 1-64 of [A-Za-z0-9_.-]"
    return None
