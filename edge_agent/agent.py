"""The daemon: wires source -> pipeline (motion, alpr, tracking, events) -> outbox -> mqtt, and reports health.

Threads: ``capture`` reads the camera (and reconnects it) and offers frames to the
recorder, ``process`` runs the per-frame pipeline and stores its events in the
outbox, ``mqtt-pump`` publishes the outbox, ``commands`` answers commands; the
main thread publishes health and feeds the systemd watchdog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from edge_agent.commands.hotlist import HotlistCommand, Hotlists
from edge_agent.commands.remote_config import RemoteConfig, State
from edge_agent.commands.router import CommandRouter
from edge_agent.commands.signing import SignedCommandVerifier
from edge_agent.config import Config
from edge_agent.core.clock import CachedClock, ClockState
from edge_agent.core.keys import KeyFileError, load_or_create_node_key, load_trusted_keys
from edge_agent.core.redact import redact
from edge_agent.core.types import Command, Event, PipelineStats
from edge_agent.field import preflight
from edge_agent.field.provision import node_identity_path, node_key_path
from edge_agent.field.systemd_notify import Notifier
from edge_agent.footage.audit import AuditError, AuditLog
from edge_agent.footage.audit_trail import AuditTrail, audit_path
from edge_agent.footage.footage import Footage, FootageError
from edge_agent.footage.retention import PrivacyRetention
from edge_agent.link.health import HealthReporter
from edge_agent.link.mqtt import MqttLink
from edge_agent.link.outbox import Outbox, OutboxError
from edge_agent.pipeline.alpr.types import ModelError
from edge_agent.pipeline.frame_pipeline import FramePipeline, Reader
from edge_agent.pipeline.privacy_mask import PrivacyMask
from edge_agent.sources import Frame, FrameSource, SourceEnded, SourceError, make_source

log = logging.getLogger(__name__)

_MAX_HELD = 10_000  # events kept in memory while the outbox cannot write


class StartupError(Exception):
    """The agent cannot start with this configuration; the message says why."""


class FrameQueue:
    """A bounded hand-over from capture to processing that drops the oldest frame when full.

    Dropping the oldest keeps latency bounded when processing falls behind; each drop is counted.
    """

    def __init__(self, stats: PipelineStats, maxsize: int = 2) -> None:
        self._items: deque[Frame] = deque()
        self._max = maxsize
        self._cond = threading.Condition()
        self._stats = stats

    def put(self, frame: Frame) -> None:
        with self._cond:
            if len(self._items) >= self._max:
                self._items.popleft()
                self._stats.frames_dropped += 1
            self._items.append(frame)
            self._cond.notify()

    def get(self, timeout: float) -> Frame | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None


def load_reader(cfg: Config, stats: PipelineStats) -> Reader | None:
    """The plate reader, or None when ALPR is off. A model named in the config that fails is fatal;
    a broken shipped model only disables plate reading (motion and health keep working)."""
    if not cfg.alpr.enabled:
        return None
    explicit = cfg.alpr.detector_model is not None or cfg.alpr.ocr_model is not None
    try:
        from edge_agent.pipeline.alpr import PlateReader

        reader: Reader = PlateReader(detector_path=cfg.alpr.detector_model, ocr_path=cfg.alpr.ocr_model,
                                     min_confidence=cfg.alpr.min_confidence,
                                     threads=cfg.alpr.threads, formats=cfg.formats.enabled)
    except (ModelError, ImportError) as exc:
        if explicit:
            raise StartupError(f"alpr: {exc}") from None
        log.error("alpr: plate reading disabled: %s", exc)
        stats.models = {"alpr": f"unavailable: {exc}"}
        return None
    stats.models = dict(reader.model_versions)
    return reader


class Agent:
    def __init__(self, cfg: Config, reader: Reader | None = None, source: FrameSource | None = None,
                 remote: State | None = None) -> None:
        self.cfg = cfg
        self.stats = PipelineStats()
        # The same checks check-config makes (edge_agent/field/preflight.py): what it calls OK starts.
        pre = preflight.check(cfg, create_data_dir=True, load_models=False)
        problems = [p for p in pre.problems if source is None or not p.startswith("camera.source")]
        if problems:
            raise StartupError("; ".join(problems))
        try:
            self.outbox = Outbox(Path(cfg.data_dir) / "outbox.sqlite3", cfg.node_id, cfg.outbox.max_events,
                                 int(cfg.outbox.max_mb * 2**20))
        except OutboxError as exc:
            raise StartupError(str(exc)) from None
        self.reader = reader if reader is not None else load_reader(cfg, self.stats)
        if reader is not None:
            self.stats.models = dict(reader.model_versions)
        self.source = source if source is not None else make_source(cfg)
        self.commands = CommandRouter(self.stats)
        self.commands.register("ping", self._cmd_ping)
        # The node key signs what the node vouches for (audit records, clip manifests); one verifier (one
        # nonce store) checks every signed command: clip requests, hotlists, config.
        try:
            trusted = load_trusted_keys(cfg.security.trusted_keys)
            node_key = load_or_create_node_key(node_key_path(cfg), node_identity_path(cfg),
                                               create=cfg.security.node_key_file is None)
        except KeyFileError as exc:
            raise StartupError(f"security: {exc}") from None
        self.verifier = SignedCommandVerifier(trusted, Path(cfg.data_dir) / "nonces.sqlite3",
                                              cfg.security.max_command_ttl_s, node_id=cfg.node_id)
        try:
            audit_log = AuditLog(audit_path(cfg.data_dir), node_key, int(cfg.audit.max_file_mb * 2**20))
        except AuditError as exc:
            raise StartupError(str(exc)) from None
        self.audit = AuditTrail(audit_log, self._store, cfg.audit.refusal_summary_s)
        self.commands.set_audit(self.audit)
        self.footage: Footage | None = None
        if cfg.recorder.enabled:
            try:
                self.footage = Footage(cfg, self.audit, self.verifier, node_key)
            except FootageError as exc:
                raise StartupError(str(exc)) from None
            self.commands.register("clip", self.footage.clips.handle, signed=True)
        self.link = MqttLink(cfg, self.outbox, self.stats, self.commands.submit)
        self.retention = PrivacyRetention()
        self.health = HealthReporter(cfg.node_id, redact(cfg.camera.source), Path(cfg.data_dir), self.stats,
                                     self.outbox)
        self.frames = FrameQueue(self.stats)
        self.hotlists = Hotlists(Path(cfg.data_dir) / "hotlists.json", cfg.hotlist.fuzzy)
        # Masked once per frame in the capture thread, in place, before the reader and the recorder share it.
        self.privacy = PrivacyMask(cfg.privacy.masks)
        self.clock = CachedClock()
        # What the main thread last learnt of the clock (asking forks a process: never on the frame path).
        self._clock_state = ClockState(None, "not checked yet")
        self.pipeline = FramePipeline(cfg, self.reader, self.stats, self.hotlists, self.privacy,
                                      lambda: self._clock_state)
        self.commands.register("hotlist", HotlistCommand(self.hotlists, self.verifier, self.audit), signed=True)
        # cmd/config restarts the process in place to apply a change to every stage at once (cli.py execs).
        self._restart = threading.Event()
        self.remote = RemoteConfig(remote or State(cfg, Path(cfg.data_dir), cfg.remote_config.self_check_s),
                                   self.verifier, self._restart.set, self.audit)
        self.commands.register("config", self.remote.handle, signed=True)
        self._store_lock = threading.Lock()
        self._held: deque[Event] = deque()
        self._stop = threading.Event()
        self._progress = time.monotonic()  # last time the processing loop went round: the watchdog's evidence
        self._threads = [
            threading.Thread(target=self._capture_loop, name="capture", daemon=True),
            threading.Thread(target=self._process_loop, name="process", daemon=True),
        ]

    # -- commands --------------------------------------------------------------------------------

    def _cmd_ping(self, _cmd: Command) -> dict[str, Any]:
        return {"node_id": self.cfg.node_id, "camera": self.stats.camera_state, "link": self.stats.link_state}

    # -- capture ---------------------------------------------------------------------------------

    def _capture_loop(self) -> None:
        cam = self.cfg.camera
        backoff = cam.reconnect_min_s
        opened = False
        while not self._stop.is_set():
            if not opened:
                try:
                    self.source.open()
                except SourceError as exc:
                    self._camera_down(str(exc), backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, cam.reconnect_max_s)
                    continue
                opened = True
                if self.stats.camera_state not in ("starting", "ok"):
                    self.stats.camera_reconnects += 1
                    log.info("camera: %s is back", redact(cam.source))
                self.stats.camera_state, self.stats.camera_error = "ok", ""
            try:
                frame = self.source.read()
            except SourceEnded as exc:
                self.stats.camera_state, self.stats.camera_error = "ended", str(exc)
                log.warning("camera: %s; the agent keeps running without frames", exc)
                self.source.close()
                return
            except SourceError as exc:
                self.source.close()
                opened = False
                self._camera_down(str(exc), backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, cam.reconnect_max_s)
                continue
            backoff = cam.reconnect_min_s
            self.stats.frames_in += 1
            if self.privacy:
                # Before the frame is shared: the reader and the recorder hold this one masked image.
                frame = self.privacy.apply(frame)
            self.frames.put(frame)
            if self.footage is not None:
                self.footage.offer(frame)  # never blocks: the recorder has its own bounded queue
        self.source.close()

    def _camera_down(self, reason: str, retry_s: float) -> None:
        if self.stats.camera_state != "down" or self.stats.camera_error != reason:
            log.error("camera: %s; retrying with backoff %.1f-%.1f s", reason, retry_s, self.cfg.camera.reconnect_max_s)
        self.stats.camera_state, self.stats.camera_error = "down", reason

    # -- processing ------------------------------------------------------------------------------

    def _process_loop(self) -> None:
        while not self._stop.is_set():
            self._progress = time.monotonic()
            frame = self.frames.get(timeout=0.5)
            # No frame for 0.5 s (the camera stalled, died or its file ended): tracks and motion still
            # end on time, so the last vehicle is published within tracking.max_gap_s + 0.5 s.
            events = self.pipeline.process(frame) if frame is not None else self.pipeline.tick(
                time.monotonic(), time.time())
            for event in events:
                self._store(event)
        for event in self.pipeline.flush():
            self._store(event)

    def _store(self, event: Event | None) -> None:
        """Into the outbox; when the disk refuses (full, I/O error) the event waits in memory, in
        order, and is stored as soon as the disk takes it again."""
        if event is None:
            return
        with self._store_lock:
            if self._held:
                self._retry_held()
            if self._held:
                self._hold(event)
            else:
                try:
                    self.outbox.append(event)
                except OutboxError as exc:
                    log.error("%s; holding events in memory (up to %d) until the disk takes them", exc, _MAX_HELD)
                    self._hold(event)
        self.link.notify()
        if self.footage is not None:
            self.footage.on_event(event)

    def _hold(self, event: Event) -> None:
        if len(self._held) >= _MAX_HELD:
            # Memory is bounded too: the oldest least important event gives way, counted as lost.
            victim = min(range(len(self._held)), key=lambda i: (self._held[i].priority, i))
            del self._held[victim]
            self.stats.events_lost += 1
        self._held.append(event)
        self.stats.events_held = len(self._held)

    def _retry_held(self) -> None:
        while self._held:
            try:
                self.outbox.append(self._held[0])
            except OutboxError:
                break
            self._held.popleft()
        if not self._held and self.stats.events_held:
            log.info("outbox: the disk takes events again; all held events are stored")
        self.stats.events_held = len(self._held)

    def retry_held(self) -> None:
        with self._store_lock:
            if self._held:
                self._retry_held()
                self.link.notify()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.commands.start(self.link.reply if self.footage is None else self.footage.router_reply(self.link.reply))
        if self.footage is not None:
            self.footage.start(self.link.reply)
        self.link.start()
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(3.0)
        self.commands.stop()
        if self.footage is not None:
            self.footage.stop()
        self.audit.tick(force=True)  # refusals counted since the last summary go on record too
        self.audit.log.close()
        self.retry_held()
        if self._held:
            self.stats.events_lost += len(self._held)
            log.error("outbox: %d events could not be written to disk before stopping and are lost", len(self._held))
        self.link.stop()
        queued = self.outbox.depth
        self.outbox.close()
        self.pipeline.close()
        if queued:
            log.info("stopped; %d events in the outbox, sent at the next start", queued)
        else:
            log.info("stopped; the outbox is empty")

    def publish_health(self) -> dict[str, Any]:
        snap = self.health.snapshot()
        problems = self.remote.self_check(self)
        snap["self_check"] = {"ok": not problems, "problems": problems}
        snap["clock"] = self.clock.as_health()
        self._clock_state = self.clock.state()  # cached by as_health just now: no second probe
        snap["config"] = self.remote.health()
        snap["audit"] = self.audit.health()
        snap["privacy"] = self.retention.section(self)
        if self.footage is not None:
            snap.update(self.footage.health())
        self.link.publish_health(snap)
        return snap

    @property
    def restart_requested(self) -> bool:
        return self._restart.is_set()

    def dead_threads(self) -> list[str]:
        """Essential threads that have died: each one means the node no longer does part of its job."""
        if self._stop.is_set():
            return []
        capture, process = self._threads
        dead = [] if process.is_alive() else ["process"]
        # A file source that ended stops the capture thread on purpose; anything else ending it is a death.
        if not capture.is_alive() and self.stats.camera_state != "ended":
            dead.append("capture")
        if not self.commands.alive:
            dead.append("commands")
        dead += self.link.dead_threads()
        if self.footage is not None:
            dead += self.footage.dead_threads()
        return dead

    def healthy(self) -> bool:
        """True while the processing loop goes round and every essential thread lives; otherwise the
        watchdog pings stop and systemd restarts the node."""
        dead = self.dead_threads()
        if dead != self.stats.dead_threads:
            if dead:
                log.error("thread(s) died: %s; the watchdog is no longer fed, so systemd restarts the agent",
                          ", ".join(dead))
            self.stats.dead_threads = dead
        return time.monotonic() - self._progress < 30.0 and not dead

    def run_forever(self, notifier: Notifier, stop: threading.Event) -> None:
        self.start()
        notifier.ready(self.cfg.summary())
        log.info("edge-agent running: %s", self.cfg.summary())
        next_health = time.monotonic()
        next_summary, published = time.monotonic() + 60.0, self.stats.plates_published
        was_connected = False
        tick = min(1.0, notifier.watchdog_interval_s or 1.0)
        while not stop.wait(tick):
            now = time.monotonic()
            if notifier.watchdog_interval_s is not None and self.healthy():
                notifier.watchdog()
            self.retry_held()
            connected = self.link.connected
            # Publish at once on (re)connect, so the retained health is never older than the link.
            if now >= next_health or (connected and not was_connected):
                snap = self.publish_health()
                notifier.status(
                    f"camera {snap['camera']['state']}, link {snap['link']['state']}, "
                    f"outbox {snap['outbox']['depth']}, {snap['fps']['in']} fps"
                )
                next_health = now + self.cfg.health.interval_s
            was_connected = connected
            if now >= next_summary:
                # Counts only: plate texts are personal data and stay out of the journal (DEBUG has them).
                if self.stats.plates_published > published:
                    log.info("plates: %d published in the last minute (%d reads since start, %d events in the outbox)",
                             self.stats.plates_published - published, self.stats.plates_read, self.outbox.depth)
                next_summary, published = now + 60.0, self.stats.plates_published
            self.remote.tick(self, self.link.reply, connected)
            self.audit.tick()
            self.retention.tick(self)  # privacy.max_age_days and audit.keep_days, once a minute
            if self._restart.is_set():
                break
        if self._restart.is_set():
            notifier.notify("RELOADING=1\nSTATUS=restarting to apply a remote configuration change")
        else:
            notifier.stopping()
            self.remote.on_clean_stop()
        log.info("edge-agent stopping")
        self.stop()
