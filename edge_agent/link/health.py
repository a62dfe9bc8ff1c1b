"""Node health: the snapshot published on ``health``, from the counters every stage updates (``PipelineStats``)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent import __version__
from edge_agent.core.types import PipelineStats, utc_iso
from edge_agent.link.outbox import Outbox

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# Set by cli.py before an in-place restart (os.execv keeps the PID but not Python's state).
PROCESS_STARTED = float(os.environ.get("EDGE_AGENT_PROCESS_STARTED", "") or time.time())
RESTARTS_IN_PLACE = int(os.environ.get("EDGE_AGENT_RESTARTS_IN_PLACE", "0") or 0)


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


class HealthReporter:
    def __init__(self, node_id: str, source: str, data_dir: Path, stats: PipelineStats, outbox: Outbox) -> None:
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
