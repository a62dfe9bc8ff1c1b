# SPDX-License-Identifier: Apache-2.0
"""Nothing personal outlives its retention (issue 15.6): undelivered events, the de-duplication memory, event
clips, clip jobs and log lines are bounded by ``privacy.max_age_days`` on the agent's timer, health reports the
oldest item per store, and the audit log (kept ``audit.keep_days``) loses old files only on record."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import free_port, write_config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import edge_agent.footage.audit as audit_mod
from edge_agent.agent import Agent
from edge_agent.cli import main
from edge_agent.commands.hotlist import Hotlists
from edge_agent.config import Config, load
from edge_agent.core.types import PRIORITY_ALERT, PRIORITY_AUDIT, PRIORITY_PLATE, Event, PipelineStats
from edge_agent.footage.audit import AuditLog, log_files, verify_file
from edge_agent.footage.audit_trail import AuditTrail
from edge_agent.footage.clips.request import ClipRequest
from edge_agent.footage.clips.service import JobStore
from edge_agent.footage.recorder.index import SegmentIndex
from edge_agent.link.outbox import Outbox
from edge_agent.pipeline.alpr.types import PlateRead
from edge_agent.pipeline.dedup import RecentPlates
from edge_agent.pipeline.frame_pipeline import FramePipeline
from edge_agent.sources.base import Frame

DAY = 86400.0


def _files_holding(directory: Path, needle: str) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file() and needle.encode() in p.read_bytes()]


def _agent(tmp_path: Path, **sections: dict[str, Any]) -> Agent:
    """An agent built in-process but not started: its stores are real, and the test drives the timer."""
    return Agent(load(write_config(tmp_path / "agent.toml", tmp_path / "data", free_port(),
                                   camera={"width": 320, "height": 240, "fps": 10}, **sections)))


# -- outbox ---------------------------------------------------------------------------------------------------


def test_outbox_events_older_than_the_bound_are_dropped_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    ob = Outbox(db, "n1", 1000, 10**8)
    ob.append(Event("plate", {"text": "OLD111PL"}, PRIORITY_PLATE))
    ob.append(Event("alert", {"text": "OLD111PL", "list_id": "stolen"}, PRIORITY_ALERT))
    ob.append(Event("motion", {"state": "start"}))
    ob.append(Event("audit", {"audit_seq": 1}, PRIORITY_AUDIT))
    ob.append(Event("plate", {"text": "NEW222PL"}, PRIORITY_PLATE))
    # A link outage of eight days: the first four events have waited that long.
    with sqlite3.connect(db) as other:
        other.execute("UPDATE outbox SET created = created - ? WHERE seq <= 4", (8 * DAY,))
    now = time.time()
    assert ob.oldest_personal_age_s(now) == pytest.approx(8 * DAY, abs=60)
    assert ob.expire(now - 7 * DAY) == {"plate": 1, "alert": 1, "motion": 1}
    assert [(p.seq, p.type) for p in ob.pending(0, 100)] == [(5, "plate")]
    assert [p.type for p in ob.pending_urgent([], 100)] == ["audit"], "audit records are evidence: never dropped"
    st = ob.stats()
    assert st.depth == 2 and st.dropped == {"plate": 1, "alert": 1, "motion": 1}, "the seq gap is accounted for"
    assert ob.aged() == {"plate": 1, "alert": 1, "motion": 1}
    assert ob.oldest_personal_age_s(now) is not None and ob.oldest_personal_age_s(now) < 60  # type: ignore[operator]
    assert ob.expire(now - 7 * DAY) == {}, "nothing twice"
    assert _files_holding(tmp_path, "OLD111PL") == [], "no copy left in the database or its WAL"
    ob.close()
    ob = Outbox(db, "n1", 1000, 10**8)
    assert ob.aged() == {"plate": 1, "alert": 1, "motion": 1}, "the counts persist"
    assert ob.append(Event("motion", {})) == 6
    ob.close()


# -- de-duplication memory ------------------------------------------------------------------------------------


def test_dedup_rows_are_purged_and_never_outlive_the_bound(tmp_path: Path) -> None:
    db = tmp_path / "seen.sqlite3"
    r = RecentPlates(db, window_s=30, now=1000)
    r.seen_recently("AB123CD", 1000)
    r.seen_recently("XY987ZW", 1090)
    assert r.oldest_age_s(1100) == pytest.approx(100)
    # Only the timer purges between plates: nothing else comes along to expire a quiet street's memory.
    assert r.purge(1100, 7 * DAY) == 1
    assert r.oldest_age_s(1100) == pytest.approx(10)
    assert r.seen_recently("AB123CD", 1100) is False
    assert r.purge(1200, 7 * DAY) == 2
    assert r.oldest_age_s(1200) is None
    assert _files_holding(tmp_path, "XY987ZW") == [], "deleted rows are zeroed and the WAL emptied"
    r.close()
    # A window longer than the privacy bound is cut to the bound.
    long = RecentPlates(tmp_path / "long.sqlite3", window_s=86400, now=0)
    long.seen_recently("AB123CD", 0)
    assert long.purge(3600, max_age_s=600) == 1 and long.seen_recently("AB123CD", 3600) is False
    long.close()


# -- the agent's timer and health -----------------------------------------------------------------------------


def _job(rid: str, token: str) -> ClipRequest:
    now = time.time()
    return ClipRequest(rid, "cam0", now - 60, now - 50, "s", "e", "City Police", "Proc. 1/2026", "Isp. M. Rossi",
                       "https://evidence.example/in", token, "ops1")


def test_a_stuck_clip_job_fails_and_is_wiped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    clips, now = data / "clips", time.time()
    store = JobStore(clips / "jobs.sqlite3")
    index = SegmentIndex(data / "footage" / "index.sqlite3")
    jobs = {"stuck-queued": now - 8 * DAY, "stuck-active": now - 8 * DAY, "fresh": now - 3600}
    for rid, accepted in jobs.items():
        store.add(_job(rid, f"token-of-{rid}"), accepted)
        store.set_upload_url(rid, f"{rid}.mp4", f"https://evidence.example/files/upload-of-{rid}")
        (clips / f"{rid}.mp4").write_bytes(b"clip")
        (clips / f"{rid}.manifest.json").write_text("{}")
        index.hold(rid, now - 60, now - 50)
    store.close()
    index.close()
    agent = _agent(tmp_path, recorder={"enabled": True})  # resumes all three: queued for the worker
    service = agent.footage.clips  # type: ignore[union-attr]
    service.stats.active = "stuck-active"  # the worker is in the middle of this one's upload
    assert agent.retention.section(agent)["oldest_age_s"]["clip_jobs"] == pytest.approx(8 * DAY, abs=60)

    assert agent.retention.tick(agent, force=True)
    left = {req.request_id for req, _ in service.jobs.pending()}
    assert left == {"stuck-active", "fresh"}, "the one in the queue is failed and wiped at once"
    assert not list(clips.glob("stuck-queued*"))
    assert "stuck-queued" not in [h for h, _, _ in agent.footage.recorder.index.holds()]  # type: ignore[union-attr]
    # The active one ends at its next chunk or attempt: the worker finds it expired.
    active = next(req for req, _ in service.jobs.pending() if req.request_id == "stuck-active")
    service.stats.active = ""
    assert service._job(active) is True
    assert {req.request_id for req, _ in service.jobs.pending()} == {"fresh"}
    assert not list(clips.glob("stuck-*")) and (clips / "fresh.mp4").exists()
    assert service.stats.expired == 2 and service.stats.failed == 2
    for rid in ("stuck-queued", "stuck-active"):
        assert _files_holding(clips, f"token-of-{rid}") == [] and _files_holding(clips, f"upload-of-{rid}") == []
    assert _files_holding(clips, "token-of-fresh") != []
    failed = [json.loads(line)["entry"] for line in (data / "audit.log").read_text().splitlines()]
    assert [(e["request_id"], e["decision"]) for e in failed] == [("stuck-queued", "failed"),
                                                                 ("stuck-active", "failed")]
    assert all(e["reason"].startswith("older than privacy.max_age_days (7 days)") for e in failed)
    section = agent.retention.section(agent)
    assert section["dropped_for_age"]["clip_jobs"] == 2
    assert section["oldest_age_s"]["clip_jobs"] == pytest.approx(3600, abs=60)


def test_event_clips_are_bounded_by_the_privacy_bound(tmp_path: Path) -> None:
    agent = _agent(tmp_path, recorder={"enabled": True, "event_clips": True, "max_age_days": 7},
                   privacy={"max_age_days": 1})
    rec = agent.footage.recorder  # type: ignore[union-attr]
    rec.event_clip_dir.mkdir(parents=True)
    now = time.time()
    for name, age in (("two-days", 2 * DAY), ("an-hour", 3600)):
        (rec.event_clip_dir / f"{name}.mp4").write_bytes(b"x" * 100)
        os.utime(rec.event_clip_dir / f"{name}.mp4", (now - age, now - age))
    rec.enforce_retention(now)
    assert len(list(rec.event_clip_dir.glob("*.mp4"))) == 2, "within recorder.max_age_days"
    agent.retention.tick(agent, force=True)  # hands the recorder the tighter bound for event clips
    rec.enforce_retention(now)  # what the recorder thread runs every recorder.retention_interval_s
    assert [p.name for p in rec.event_clip_dir.glob("*.mp4")] == ["an-hour.mp4"]
    section = agent.retention.section(agent, now)
    assert section["dropped_for_age"]["event_clips"] == 1
    assert section["oldest_age_s"]["event_clips"] == pytest.approx(3600, abs=1)


def test_what_a_disabled_recorder_left_behind_is_still_bounded(tmp_path: Path) -> None:
    data, now = tmp_path / "data", time.time()
    store = JobStore(data / "clips" / "jobs.sqlite3")
    store.add(_job("left-behind", "token-left-behind"), now - 8 * DAY)
    store.close()
    (data / "clips" / "left-behind.mp4").write_bytes(b"clip")
    index = SegmentIndex(data / "footage" / "index.sqlite3")
    old = data / "footage" / "20260101" / "old.mp4"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"segment")
    index.finish(index.add_open(old, now - 9 * DAY), now - 9 * DAY + 10, 7, 100)
    index.hold("left-behind", now - 9 * DAY, now - 9 * DAY + 10)
    index.close()
    clip = data / "footage" / "event-clips" / "ev.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"clip")
    os.utime(clip, (now - 8 * DAY, now - 8 * DAY))

    agent = _agent(tmp_path)  # recorder off: no recorder or clip service runs to look after these
    assert agent.footage is None
    agent.retention.tick(agent, force=True)
    assert not old.exists() and not clip.exists() and not (data / "clips" / "left-behind.mp4").exists()
    assert _files_holding(data / "clips", "token-left-behind") == []
    section = agent.retention.section(agent)
    assert section["dropped_for_age"] | {"outbox": {}, "dedup": 0} == {
        "outbox": {}, "dedup": 0, "footage": 1, "event_clips": 1, "clip_jobs": 1}
    assert section["oldest_age_s"]["footage"] is None and section["oldest_age_s"]["clip_jobs"] is None


def test_health_reports_the_privacy_section(tmp_path: Path) -> None:
    agent = _agent(tmp_path, recorder={"enabled": True}, privacy={"max_age_days": 5}, audit={"keep_days": 1000})
    agent.outbox.append(Event("plate", {"text": "AB123CD"}, PRIORITY_PLATE))
    agent.pipeline.recent.seen_recently("AB123CD", time.time() - 10)
    agent.retention.tick(agent, force=True)
    assert not agent.retention.tick(agent), "once a minute, not every call"
    snap = agent.publish_health()
    privacy = snap["privacy"]
    assert privacy["max_age_days"] == 5 and privacy["footage_max_age_days"] == 7
    assert set(privacy["oldest_age_s"]) == {"outbox", "dedup", "event_clips", "clip_jobs", "footage"}
    assert set(privacy["dropped_for_age"]) == set(privacy["oldest_age_s"])
    assert privacy["oldest_age_s"]["outbox"] is not None and privacy["oldest_age_s"]["outbox"] < 60
    assert privacy["oldest_age_s"]["dedup"] == pytest.approx(10, abs=5)
    assert privacy["oldest_age_s"]["footage"] is None and privacy["oldest_age_s"]["clip_jobs"] is None
    assert privacy["dropped_for_age"]["outbox"] == {}
    assert snap["audit"]["keep_days"] == 1000 and snap["audit"]["files_removed_by_retention"] == 0
    json.dumps(snap)  # as published


# -- logs -----------------------------------------------------------------------------------------------------


class _OneCar:
    """A reader that sees plate AB123CD in every frame."""

    min_confidence = 0.0  # the pipeline sets it to alpr.min_confidence

    @property
    def model_versions(self) -> dict[str, str]:
        return {"fake": "1"}

    def read(self, image_bgr: Any, regions: Any = ()) -> list[PlateRead]:
        return [PlateRead("AB123CD", (600, 500, 150, 32), 0.95, (0.97,) * 7)]


def test_plate_texts_reach_the_log_only_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config.model_validate({"data_dir": str(tmp_path), "motion": {"enabled": False}})
    hotlists = Hotlists(tmp_path / "h.json", False)
    hotlists.apply("stolen", "replace", {"AB123CD": "stolen 2026-11-01"})

    def one_pass(data_dir: Path) -> list[Event]:
        pipe = FramePipeline(cfg.model_copy(update={"data_dir": str(data_dir)}), _OneCar(), PipelineStats(),
                             hotlists)
        img = np.full((720, 1280, 3), 80, np.uint8)
        events: list[Event] = []
        for i in range(4):
            events += pipe.process(Frame(i, 1_700_000_000 + i / 10, 100 + i / 10, img))
        events += pipe.flush()
        pipe.close()
        return events

    with caplog.at_level(logging.INFO, logger="edge_agent"):
        events = one_pass(tmp_path / "a")
    assert {e.type for e in events} >= {"plate", "alert"}
    assert not [r for r in caplog.records if "AB123CD" in r.getMessage()], caplog.text
    assert "hotlist: a plate matches list stolen (exact)" in caplog.text, "the match is still said, without text"
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="edge_agent"):
        one_pass(tmp_path / "b")
    assert any(r.levelno == logging.DEBUG and "plate AB123CD" in r.getMessage() for r in caplog.records)

    from edge_agent.sources.demo import DemoSource

    caplog.clear()
    demo = DemoSource(320, 240, 20, 0.2, 2400, realtime=False)
    demo.open()
    with caplog.at_level(logging.INFO, logger="edge_agent"):
        for _ in range(20):
            demo.read()
    assert demo.plates_shown and not [r for r in caplog.records if "enters the scene" in r.getMessage()]


# -- the audit log: kept audit.keep_days, then removed on record ----------------------------------------------


class _Clock:
    now = 1_700_000_000.0

    @classmethod
    def time(cls) -> float:
        return cls.now


def _trail(path: Path, key: Ed25519PrivateKey, published: list[Event]) -> AuditTrail:
    return AuditTrail(AuditLog(path, key, max_bytes=2000), published.append)


def test_audit_files_past_keep_days_are_removed_on_record_and_verify(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(audit_mod, "time", _Clock)  # the log's own clock: five years pass in a test
    key = Ed25519PrivateKey.generate()
    path, published = tmp_path / "audit.log", list[Event]()
    trail = _trail(path, key, published)
    heads = []
    for i in range(40):
        rec = trail.record({"action": "hotlist", "decision": "accepted", "request_id": f"old{i}"})
        assert rec is not None
        heads.append((rec.seq, rec.hash))
    _Clock.now += 3 * DAY
    for i in range(10):
        trail.record({"action": "hotlist", "decision": "accepted", "request_id": f"new{i}"})
    files = log_files(path)
    assert len(files) >= 4
    assert trail.enforce_retention(1000, now=_Clock.now) == 0, "nothing is that old yet"

    # Old records past keep_days (2 days here), newer ones not: only whole files of old records go.
    removed = trail.enforce_retention(2, now=_Clock.now + 1)
    assert removed >= 2
    notes = [e.payload["entry"] for e in published if e.payload["entry"]["action"] == "audit_retention"]
    assert len(notes) == removed, "each removal is on record, and published as events/audit"
    last = notes[-1]
    assert last["decision"] == "removed" and last["keep_days"] == 2 and last["file"].startswith("audit-")
    assert (last["last_seq"], last["last_hash"]) in heads and last["last_seq"] < 40
    assert not (tmp_path / last["file"]).exists()
    result = verify_file(path, key.public_key())
    assert result.ok, result.problem
    assert result.removed_to == last["last_seq"] and result.last_seq == 50 + removed
    assert main(["audit", "verify", "--file", str(path), "--head", f"{heads[0][0]}:{heads[0][1]}"]) == 0
    out = capsys.readouterr().out
    assert f"entries 1-{last['last_seq']} removed by retention, record seq {result.removed_record}" in out, out
    assert "seq 1 as received was removed by retention" in out
    # A file removed by hand is not retention: it has no record, and the chain says what is missing.
    first = log_files(path)[0]
    first.unlink()
    bad = verify_file(path, key.public_key())
    assert not bad.ok and "are missing" in bad.problem


def test_audit_retention_rotates_a_quiet_log_and_survives_a_crash_midway(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_mod, "time", _Clock)
    key = Ed25519PrivateKey.generate()
    path, published = tmp_path / "audit.log", list[Event]()
    trail = AuditTrail(AuditLog(path, key), published.append)  # 16 MB files: a quiet node never fills one
    for i in range(3):
        trail.record({"action": "config", "decision": "accepted", "request_id": f"c{i}"})
    _Clock.now += 31 * DAY
    # The live file is a month old: it rotates, so it can go as a whole once its newest entry is past keep_days.
    assert trail.enforce_retention(1827, now=_Clock.now) == 0
    assert [p.name for p in log_files(path)] == ["audit-000000001.log", "audit.log"]
    _Clock.now += 1827 * DAY

    def crash(_f: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(trail.log, "remove_rotated", crash)
    assert trail.enforce_retention(1827, now=_Clock.now) == 0  # recorded, but the file could not go
    monkeypatch.undo()
    monkeypatch.setattr(audit_mod, "time", _Clock)
    trail.log.close()
    trail = AuditTrail(AuditLog(path, key), published.append)  # a restart: the record is found in the chain
    assert trail.enforce_retention(1827, now=_Clock.now) == 1
    notes = [e for e in published if e.payload["entry"]["action"] == "audit_retention"]
    assert len(notes) == 1, "one record per file, also across a crash between record and delete"
    result = verify_file(path, key.public_key())
    assert result.ok and result.removed_to == 3 and result.entries == 1, result
    assert trail.health()["files_removed_by_retention"] == 1
    trail.log.close()
