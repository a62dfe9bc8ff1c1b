"""The daemon: wires source -> motion -> alpr -> events -> outbox -> mqtt, and reports health.

Threads: ``capture`` reads the camera (and reconnects it), ``process`` runs the
motion gate, the plate reader and the event builder and stores events in the
outbox, ``mqtt-pump`` publishes the outbox, ``commands`` answers commands; the
main thread publishes health and feeds the systemd watchdog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from edge_agent.alpr.types import ModelError, PlateRead
from edge_agent.commands import Command, CommandRouter
from edge_agent.config import Config
from edge_agent.events import EventBuilder
from edge_agent.health import HealthReporter, PipelineStats, ema
from edge_agent.motion import MotionDetector
from edge_agent.mqtt_link import MqttLink
from edge_agent.outbox import Outbox, OutboxError
from edge_agent.sources import Frame, FrameSource, SourceEnded, SourceError, make_source, redact
from edge_agent.systemd_notify import Notifier

log = logging.getLogger(__name__)


class Reader(Protocol):
    def read(self, image_bgr: Any) -> list[PlateRead]: ...

    @property
    def model_versions(self) -> dict[str, str]: ...


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
        from edge_agent.alpr import PlateReader

        reader: Reader = PlateReader(detector_path=cfg.alpr.detector_model, ocr_path=cfg.alpr.ocr_model,
                                     threads=cfg.alpr.threads)
    except (ModelError, ImportError) as exc:
        if explicit:
            raise StartupError(f"alpr: {exc}") from None
        log.error("alpr: plate reading disabled: %s", exc)
        stats.models = {"alpr": f"unavailable: {exc}"}
        return None
    stats.models = dict(reader.model_versions)
    return reader


class Agent:
    def __init__(self, cfg: Config, reader: Reader | None = None, source: FrameSource | None = None) -> None:
        self.cfg = cfg
        self.stats = PipelineStats()
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
        self.link = MqttLink(cfg, self.outbox, self.stats, self.commands.submit)
        self.health = HealthReporter(cfg.node_id, redact(cfg.camera.source), Path(cfg.data_dir), self.stats,
                                     self.outbox)
        self.frames = FrameQueue(self.stats)
        self.events = EventBuilder(cfg.events, cfg.motion.end_after_s)
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
            self.frames.put(frame)
        self.source.close()

    def _camera_down(self, reason: str, retry_s: float) -> None:
        if self.stats.camera_state != "down" or self.stats.camera_error != reason:
            log.error("camera: %s; retrying with backoff %.1f-%.1f s", reason, retry_s, self.cfg.camera.reconnect_max_s)
        self.stats.camera_state, self.stats.camera_error = "down", reason

    # -- processing ------------------------------------------------------------------------------

    def _process_loop(self) -> None:
        motion: MotionDetector | None = None
        last_scan = 0.0
        mcfg = self.cfg.motion
        while not self._stop.is_set():
            self._progress = time.monotonic()
            frame = self.frames.get(timeout=0.5)
            if frame is None:
                continue
            active = True
            if mcfg.enabled:
                h, w = frame.image.shape[:2]
                if motion is None or motion.frame_size != (w, h):
                    motion = MotionDetector(mcfg, w, h)
                t0 = time.perf_counter()
                result = motion.detect(frame)
                self.stats.motion_ms = ema(self.stats.motion_ms, (time.perf_counter() - t0) * 1000)
                active = result.active
                if active:
                    self.stats.motion_frames += 1
                self._store(self.events.motion(result, frame.ts, frame.mono))
            scan_due = mcfg.scan_interval_s > 0 and frame.mono - last_scan >= mcfg.scan_interval_s
            if self.reader is not None and (active or scan_due):
                last_scan = frame.mono
                t0 = time.perf_counter()
                reads = self.reader.read(frame.image)
                self.stats.inference_ms = ema(self.stats.inference_ms, (time.perf_counter() - t0) * 1000)
                self.stats.alpr_runs += 1
                for r in reads:
                    if r.confidence < self.cfg.alpr.min_confidence:
                        continue
                    self.stats.plates_read += 1
                    self._store(self.events.plate(r, frame.ts, frame.mono))
            self.stats.frames_processed += 1

    def _store(self, event: Any) -> None:
        if event is None:
            return
        try:
            self.outbox.append(event)
        except OutboxError as exc:
            self.stats.events_lost += 1
            log.error("%s", exc)
            return
        self.link.notify()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self.commands.start(self.link.reply)
        self.link.start()
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(3.0)
        self.commands.stop()
        self.link.stop()
        self.outbox.close()

    def publish_health(self) -> dict[str, Any]:
        snap = self.health.snapshot()
        self.link.publish_health(snap)
        return snap

    def healthy(self) -> bool:
        """True while the processing loop goes round; a hung loop stops the watchdog pings."""
        return time.monotonic() - self._progress < 30.0 and all(t.is_alive() for t in self._threads[1:])

    def run_forever(self, notifier: Notifier, stop: threading.Event) -> None:
        self.start()
        notifier.ready(self.cfg.summary())
        log.info("edge-agent running: %s", self.cfg.summary())
        next_health = time.monotonic()
        was_connected = False
        tick = min(1.0, notifier.watchdog_interval_s or 1.0)
        while not stop.wait(tick):
            now = time.monotonic()
            if notifier.watchdog_interval_s is not None and self.healthy():
                notifier.watchdog()
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
        notifier.stopping()
        log.info("edge-agent stopping")
        self.stop()
