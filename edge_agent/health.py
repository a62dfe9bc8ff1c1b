"""Node health: the counters every stage updates, and the snapshot published on ``health``; and the
retention of personal data (:class:`PrivacyRetention`), which health reports store by store."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_agent import __version__
from edge_agent.events import utc_iso
from edge_agent.outbox import Outbox

if TYPE_CHECKING:
    from edge_agent.audit_trail import AuditTrail
    from edge_agent.config import Config
    from edge_agent.dedup import RecentPlates
    from edge_agent.footage import Footage

log = logging.getLogger(__name__)

# Set by cli.py before an in-place restart (os.execv keeps the PID but not Python's state).
PROCESS_STARTED = float(os.environ.get("EDGE_AGENT_PROCESS_STARTED", "") or time.time())
RESTARTS_IN_PLACE = int(os.environ.get("EDGE_AGENT_RESTARTS_IN_PLACE", "0") or 0)


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


def _cpu_temp_c() -> float | None:
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            return round(int(zone.read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            continue
    return None


def _meminfo_mb() -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    out[key] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return {"total_mb": out.get("MemTotal", 0.0), "available_mb": out.get("MemAvailable", 0.0)}


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return 0.0


class _Deduplicating(Protocol):
    @property
    def recent(self) -> RecentPlates: ...


class RetentionHost(Protocol):
    """Where the stores of personal data live: the agent."""

    @property
    def cfg(self) -> Config: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def pipeline(self) -> _Deduplicating: ...

    @property
    def footage(self) -> Footage | None: ...

    @property
    def audit(self) -> AuditTrail: ...


def _age(now: float, ts: float | None) -> float | None:
    return None if ts is None else round(max(0.0, now - ts), 1)


def _round(age: float | None) -> float | None:
    return None if age is None else round(age, 1)


class PrivacyRetention:
    """``privacy.max_age_days`` over every store of plate texts and images: undelivered events in the outbox,
    the de-duplication memory, event clips, clip jobs (their cut clips, manifests and tokens); footage keeps
    ``recorder.max_age_days`` and the audit log ``audit.keep_days``. Enforced from the agent's main loop once a
    minute (not per frame: nothing here is urgent to the second, and each pass touches every store)."""

    INTERVAL_S = 60.0

    def __init__(self) -> None:
        self._next = float("-inf")  # monotonic time of the next pass; the first comes at once
        self.passes = 0
        self.dedup_purged = 0
        # With the recorder off, what an earlier run recorded is still bounded (below), and reported from here.
        self._unattended: dict[str, float | None] = {"footage": None, "event_clips": None, "clip_jobs": None}
        self._unattended_dropped = {"footage": 0, "event_clips": 0, "clip_jobs": 0}

    def tick(self, host: RetentionHost, now: float | None = None, force: bool = False) -> bool:
        """One retention pass when one is due (or ``force``); True when it ran."""
        mono = time.monotonic()
        if not force and mono < self._next:
            return False
        self._next = mono + self.INTERVAL_S
        now = time.time() if now is None else now
        cfg = host.cfg
        max_age_s = cfg.privacy.max_age_days * 86400
        self._guard("outbox", lambda: self._outbox(host.outbox, now, max_age_s))
        self._guard("dedup", lambda: self._dedup(host.pipeline.recent, now, max_age_s))
        footage = host.footage
        if footage is not None:
            self._guard("footage", lambda: self._footage(footage, now, max_age_s))
        else:
            self._guard("footage", lambda: self._unattended_footage(host, now, max_age_s))
        self._guard("audit", lambda: host.audit.enforce_retention(cfg.audit.keep_days, now))
        self.passes += 1
        return True

    @staticmethod
    def _guard(store: str, fn: Callable[[], object]) -> None:
        # The main loop feeds the watchdog: a failing store is logged and tried again at the next pass.
        try:
            fn()
        except Exception:
            log.exception("privacy: retention of %s failed; tried again in %.0f s", store, PrivacyRetention.INTERVAL_S)

    @staticmethod
    def _outbox(outbox: Outbox, now: float, max_age_s: float) -> None:
        dropped = outbox.expire(now - max_age_s)
        if dropped:
            log.warning("privacy: dropped undelivered events older than privacy.max_age_days (%g days): %s",
                        max_age_s / 86400, ", ".join(f"{n} {kind}" for kind, n in sorted(dropped.items())))

    def _dedup(self, recent: RecentPlates, now: float, max_age_s: float) -> None:
        self.dedup_purged += recent.purge(now, max_age_s)

    @staticmethod
    def _footage(footage: Footage, now: float, max_age_s: float) -> None:
        rec = footage.recorder
        if rec.policy.event_clip_max_age_s != max_age_s:
            # Swapped whole: the recorder thread reads its policy once per pass and applies it itself.
            rec.policy = dataclasses.replace(rec.policy, event_clip_max_age_s=max_age_s)
        footage.clips.expire(now, max_age_s)

    def _unattended_footage(self, host: RetentionHost, now: float, max_age_s: float) -> None:
        """The recorder is off, but an earlier run may have left footage, event clips and clip jobs: nothing
        else would ever delete them."""
        from edge_agent.clips.service import expire_unattended

        data = Path(host.cfg.data_dir)
        expired, kept, oldest_job = expire_unattended(data / "clips", now, max_age_s, host.audit)
        self._unattended_dropped["clip_jobs"] += expired
        self._unattended["clip_jobs"] = oldest_job
        if not (data / "footage" / "index.sqlite3").exists():
            return
        from edge_agent.recorder import EncoderSettings, Recorder, RetentionPolicy

        rc = host.cfg.recorder
        rec = Recorder(data / "footage", EncoderSettings(), rc.segment_s,
                       RetentionPolicy(rc.max_age_days * 86400, int(rc.max_disk_mb * 2**20), max_age_s))
        try:
            for holder, _, _ in rec.index.holds():
                if holder not in kept:
                    rec.index.release(holder)  # its job has ended: nothing may keep footage for it
            rec.enforce_retention(now)
            span = rec.index.span()
        finally:
            rec.index.close()
        self._unattended["footage"] = None if span is None else span[0]
        self._unattended["event_clips"] = rec.stats.event_clips_oldest_ts
        self._unattended_dropped["footage"] += rec.stats.segments_expired
        self._unattended_dropped["event_clips"] += rec.stats.event_clips_expired

    def section(self, host: RetentionHost, now: float | None = None) -> dict[str, Any]:
        """The ``privacy`` object of health: the bound, the oldest item's age per store, what went for age."""
        now = time.time() if now is None else now
        footage = host.footage
        if footage is not None:
            rec, clips = footage.recorder, footage.clips
            span = rec.index.span()
            oldest = {"event_clips": _age(now, rec.stats.event_clips_oldest_ts),
                      "clip_jobs": _round(clips.oldest_age_s(now)),
                      "footage": _age(now, None if span is None else span[0])}
            dropped = {"event_clips": rec.stats.event_clips_expired, "clip_jobs": clips.stats.expired,
                       "footage": rec.stats.segments_expired}
        else:
            oldest = {k: _age(now, ts) for k, ts in self._unattended.items()}
            dropped = dict(self._unattended_dropped)
        return {
            "max_age_days": host.cfg.privacy.max_age_days,
            "footage_max_age_days": host.cfg.recorder.max_age_days,
            "oldest_age_s": {"outbox": _round(host.outbox.oldest_personal_age_s(now)),
                             "dedup": _round(host.pipeline.recent.oldest_age_s(now)), **oldest},
            "dropped_for_age": {"outbox": host.outbox.aged(), "dedup": self.dedup_purged, **dropped},
        }


class HealthReporter:
    def __init__(self, node_id: str, source: str, data_dir: Path, stats: PipelineStats, outbox: Outbox) -> None:
        self.retention = PrivacyRetention()
        self._node_id = node_id
        self._source = source
        self._data_dir = data_dir
        self._stats = stats
        self._outbox = outbox
        self._started = time.monotonic()
        self._last_t = self._started
        self._last_in = 0
        self._last_processed = 0

    def snapshot(self) -> dict[str, Any]:
        s = self._stats
        now = time.monotonic()
        dt = max(now - self._last_t, 1e-6)
        fps_in = (s.frames_in - self._last_in) / dt
        fps_processed = (s.frames_processed - self._last_processed) / dt
        self._last_t, self._last_in, self._last_processed = now, s.frames_in, s.frames_processed
        try:
            du = shutil.disk_usage(self._data_dir)
            disk = {"path": str(self._data_dir), "free_mb": round(du.free / 2**20, 1),
                    "total_mb": round(du.total / 2**20, 1)}
        except OSError:
            disk = {"path": str(self._data_dir), "free_mb": None, "total_mb": None}
        ob = self._outbox.stats()
        return {
            "node_id": self._node_id,
            "ts": utc_iso(time.time()),
            "version": __version__,
            # The process lives on across in-place restarts (cmd/config execs): its age, and how often.
            "uptime_s": round(time.time() - PROCESS_STARTED, 1),
            "since_restart_s": round(now - self._started, 1),
            "restarts_in_place": RESTARTS_IN_PLACE,
            "cpu_temp_c": _cpu_temp_c(),
            "load": [round(v, 2) for v in os.getloadavg()],
            "memory": {**_meminfo_mb(), "rss_mb": _rss_mb()},
            "disk": disk,
            "frames": {"in": s.frames_in, "processed": s.frames_processed, "dropped": s.frames_dropped,
                       "with_motion": s.motion_frames, "alpr_runs": s.alpr_runs, "plates_read": s.plates_read,
                       "alpr_errors": s.alpr_errors},
            "plates": {"published": s.plates_published, "repeats_suppressed": s.plates_repeated,
                       "single_doubtful_reads_discarded": s.plates_discarded,
                       "hotlist_alerts": s.hotlist_alerts},
            "fps": {"in": round(fps_in, 2), "motion": round(fps_processed, 2)},
            "motion_ms": round(s.motion_ms, 3),
            "inference_ms": round(s.inference_ms, 2),
            "outbox": {"depth": ob.depth, "bytes": ob.bytes,
                       "oldest_age_s": None if ob.oldest_age_s is None else round(ob.oldest_age_s, 1),
                       "last_seq": ob.last_seq, "dropped": ob.dropped, "lost": s.events_lost,
                       "held_in_memory": s.events_held},
            "link": {"state": s.link_state, "reconnects": s.link_reconnects, "protocol": s.link_protocol,
                     "subscription": s.link_subscription, "publish_refused": s.link_publish_refused,
                     "last_refusal": None if s.link_last_refusal is None else dict(s.link_last_refusal)},
            "camera": {"source": self._source, "state": s.camera_state, "error": s.camera_error,
                       "reconnects": s.camera_reconnects},
            "models": dict(s.models),
            "commands": {"received": s.commands_received, "rejected": s.commands_rejected,
                         "dropped": s.commands_dropped, "oversized": s.commands_oversized,
                         "unanswered": s.commands_unanswered,
                         "errors": s.command_errors},
            "threads": {"dead": list(s.dead_threads), "callback_errors": s.callback_errors},
        }
