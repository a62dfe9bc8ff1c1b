# SPDX-License-Identifier: Apache-2.0
"""Retention of personal data: one bound, ``privacy.max_age_days``, for every store of plate texts and images
on the pole (undelivered outbox events, de-duplication memory, event clips, clip jobs), and
``audit.keep_days`` for the audit log; enforced once a minute from the agent's main loop, and reported
store by store in the ``privacy`` object of health."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_agent.link.outbox import Outbox

if TYPE_CHECKING:
    from edge_agent.config import Config
    from edge_agent.footage.audit_trail import AuditTrail
    from edge_agent.footage.footage import Footage
    from edge_agent.pipeline.dedup import RecentPlates

log = logging.getLogger(__name__)


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
        from edge_agent.footage.clips.service import expire_unattended

        data = Path(host.cfg.data_dir)
        expired, kept, oldest_job = expire_unattended(data / "clips", now, max_age_s, host.audit)
        self._unattended_dropped["clip_jobs"] += expired
        self._unattended["clip_jobs"] = oldest_job
        if not (data / "footage" / "index.sqlite3").exists():
            return
        from edge_agent.footage.recorder import EncoderSettings, Recorder, RetentionPolicy

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
