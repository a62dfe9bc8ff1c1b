# SPDX-License-Identifier: Apache-2.0
"""Wires the footage features into the agent: the recorder (ring buffer, retention, event clips) and
the ``cmd/clip`` service (signed requests, audit log, signed manifests, resumable uploads).

The agent holds one :class:`Footage` (or None when ``recorder.enabled`` is false) and touches it at
three points: every captured frame (``offer``), every stored event (``on_event``) and health
(``health``). The audit trail and the node key belong to the agent (every signed command is audited,
recorder or not) and are handed in.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands.signing import SignedCommandVerifier
from edge_agent.config import Config
from edge_agent.footage.audit_trail import AuditTrail
from edge_agent.footage.clips.service import ClipService, Reply
from edge_agent.footage.clips.upload import Uploader, UploadSettings
from edge_agent.footage.recorder import EncoderSettings, Recorder, RetentionPolicy
from edge_agent.sources.base import Frame


class FootageError(Exception):
    """The footage features cannot start; the message says why."""


class Footage:
    def __init__(self, cfg: Config, audit: AuditTrail, verifier: SignedCommandVerifier,
                 node_key: Ed25519PrivateKey) -> None:
        rc, data = cfg.recorder, Path(cfg.data_dir)
        self.cfg = cfg
        settings = EncoderSettings(codec=rc.codec, crf=rc.crf, preset=rc.preset,
                                   gop_frames=max(1, round(rc.keyframe_interval_s * cfg.camera.fps)))
        try:
            self.recorder = Recorder(data / "footage", settings, rc.segment_s,
                                     RetentionPolicy(rc.max_age_days * 86400, int(rc.max_disk_mb * 2**20)),
                                     rc.retention_interval_s, rc.queue_frames)
        except OSError as exc:
            raise FootageError(f"footage: {exc}") from None
        up = cfg.upload
        uploader = Uploader(UploadSettings(up.max_kbps, up.chunk_kb * 1024, up.timeout_s, up.retry_min_s,
                                           up.retry_max_s, up.give_up_after_s, up.ca_file))
        self.clips = ClipService(node_id=cfg.node_id, camera_id=rc.camera_id, recorder=self.recorder,
                                 audit=audit, verifier=verifier, node_key=node_key, uploader=uploader,
                                 work_dir=data / "clips", max_clip_s=cfg.clips.max_clip_s,
                                 max_pending=cfg.clips.max_pending,
                                 wait_for_footage_s=max(cfg.clips.wait_for_footage_s, rc.segment_s),
                                 progress_interval_s=up.progress_interval_s, allow_http=up.allow_http,
                                 give_up_after_s=up.give_up_after_s,
                                 allowed_hosts=tuple(h.lower() for h in up.allowed_hosts),
                                 require_sealed_token=cfg.clips.require_sealed_token)
        self.uploader = uploader

    def start(self, reply: Reply) -> None:
        self.recorder.start()
        self.clips.start(reply)

    def stop(self) -> None:
        self.clips.stop()
        self.recorder.stop()

    def dead_threads(self) -> list[str]:
        """This part's threads that should run and do not (checked by the watchdog)."""
        return [name for name, alive in (("recorder", self.recorder.alive), ("clip-worker", self.clips.alive))
                if not alive]

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
