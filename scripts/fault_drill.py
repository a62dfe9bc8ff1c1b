#!/usr/bin/env python3
"""Fault drill: drive the agent against a real local mosquitto and inject faults; count what arrives.

Faults (each many times, at random points): broker restarts, a long link outage with a large
backlog, SIGKILL of the agent, disk full on the data dir (a small tmpfs; needs root), camera loss
(an MJPEG camera that is unplugged and plugged back). The agent runs the demo scene at a high
event rate (fast cars, motion start/end events) so that backlogs build quickly: "time passes fast".

For every scenario it prints: events generated (the outbox's last seq), delivered (distinct seqs at
the subscriber), duplicated (deliveries beyond the first, by event_id), dropped by the documented
outbox policy, lost (generated - delivered - dropped: must be 0), and the drain rate after an outage.

    python scripts/fault_drill.py                 # full drill (~13 minutes; a 10-minute outage, ~4000 queued)
    python scripts/fault_drill.py --quick         # short version (CI runs it through tests/test_fault_drill.py)
    python scripts/fault_drill.py --only sigkill --kills 20 --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from child_process import die_with_parent
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ("broker_restart", "outage", "sigkill", "disk_full", "camera_loss")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Broker:
    """mosquitto with persistence, so the subscriber's session (and its queued messages) survive restarts."""

    def __init__(self, work: Path) -> None:
        self.port = _free_port()
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        (work / "mq").mkdir()
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {work / 'mq'}/\nautosave_interval 1\nuser root\n"
                             "max_queued_messages 0\n")
        self.log = open(work / "mosquitto.log", "ab")  # noqa: SIM115 - lives as long as the broker
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=self.log, stderr=self.log,
                                     preexec_fn=die_with_parent)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None


@dataclass
class Subscriber:
    """The operations room: persistent session, QoS 1, records every event."""

    port: int
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: dict[int, float] = field(default_factory=dict)  # seq -> monotonic time of its first arrival
    health: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"drill-ops-{os.getpid()}",
                                  clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe("edge/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if "/events/" in msg.topic:
                event = json.loads(msg.payload)
                self.events.append(event)
                self.arrived.setdefault(event["seq"], time.monotonic())
            elif msg.topic.endswith("/health"):
                self.health = json.loads(msg.payload)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Agent:
    def __init__(self, work: Path, data_dir: Path, port: int, source: str = "demo") -> None:
        self.data_dir = data_dir
        self.cfg = work / "agent.toml"
        self.cfg.write_text(
            f'node_id = "drill"\ndata_dir = "{data_dir}"\n'
            f'[camera]\nsource = "{source}"\nwidth = 640\nheight = 360\nfps = 50\nreconnect_min_s = 0.2\n'
            f'reconnect_max_s = 1.0\nread_timeout_s = 2\n[demo]\ncar_interval_s = 0.25\ncar_speed_px_s = 5000\n'
            f'[motion]\nend_after_s = 0.05\n[alpr]\nenabled = false\n'
            f'[mqtt]\nport = {port}\nreconnect_min_s = 1\nreconnect_max_s = 1\n[health]\ninterval_s = 1\n')
        self.log = work / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(self.cfg)],
                                         stdout=out, stderr=out, cwd=REPO, preexec_fn=die_with_parent)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None

    def last_seq(self) -> int:
        """The outbox's last seq, or 0 while the agent has not made its database yet."""
        try:
            return self.outbox()[0]
        except (RuntimeError, sqlite3.Error):
            return 0

    def outbox(self) -> tuple[int, int, int]:
        """(last seq, events dropped by policy, depth) straight from the outbox database."""
        path = self.data_dir / "outbox.sqlite3"
        if not path.exists():
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"
            raise RuntimeError(f"the agent made no outbox at {path}; its log ends:\n{tail}")
        db = sqlite3.connect(str(path))
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        finally:
            db.close()
        dropped = sum(v for k, v in meta.items() if k.startswith("dropped_"))
        return int(meta.get("last_seq", 0)), int(dropped), int(depth)


def fill_disk(folder: Path) -> Path:
    """Writes a filler file until the filesystem refuses; returns its path (unlink it, missing_ok, to free the
    space: a filesystem full already at the open leaves no file)."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(chunk)
                f.flush()
    except OSError:
        # Full. A write the filesystem cut short leaves bytes buffered, and closing the file flushes them:
        # ENOSPC again, raised at the ``with`` (a CI run met it). Either way the disk is full, the fault this
        # scenario injects; a filesystem full already at the open leaves no file.
        pass
    return filler


def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _tally(name: str, agent: Agent, sub: Subscriber, extra: dict[str, Any]) -> dict[str, Any]:
    agent.stop()  # graceful: flushes, then the outbox is final
    last_seq, dropped, depth = agent.outbox()
    with sub.lock:
        evs = list(sub.events)
    seqs = {e["seq"] for e in evs}
    ids = [e["event_id"] for e in evs]
    lost = last_seq - len(seqs) - dropped
    return {"scenario": name, "generated": last_seq, "delivered": len(seqs), "duplicated": len(ids) - len(set(ids)),
            "dropped_by_policy": dropped, "undelivered_in_outbox": depth, "lost": lost, **extra}


def _settle(agent: Agent, sub: Subscriber, timeout: float = 60) -> None:
    """Wait until the agent's outbox is empty and the subscriber saw the latest seq."""
    def done() -> bool:
        last, _, depth = agent.outbox()
        with sub.lock:
            got = {e["seq"] for e in sub.events}
        return depth == 0 and last in got
    _wait(done, timeout)


def run_scenario(name: str, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"drill-{name}-") as tmp:
        work = Path(tmp)
        broker = Broker(work)
        broker.start()
        sub = Subscriber(broker.port)
        _wait(sub.client.is_connected, 10)
        data = work / "data"
        mounted = False
        extra: dict[str, Any] = {}
        camera = None
        source = "demo"
        if name == "disk_full":
            data.mkdir()
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(data)], capture_output=True)
            if r.returncode != 0:
                sub.close()
                broker.stop()
                return {"scenario": name, "skipped": f"cannot mount tmpfs: {r.stderr.decode().strip()}"}
            mounted = True
        if name == "camera_loss":
            sys.path.insert(0, str(REPO / "tests"))
            from mjpeg_server import MjpegServer

            camera = MjpegServer(fps=25)
            camera.start()
            source = camera.url
        agent = Agent(work, data / "agent", broker.port, source)
        agent.start()
        try:
            time.sleep(2)
            if name == "broker_restart":
                for i in range(args.restarts):
                    time.sleep(rng.uniform(0.5, 3.0))
                    broker.stop()
                    time.sleep(rng.uniform(0.2, 3.0))
                    broker.start()
                    _log(f"broker restart {i + 1}/{args.restarts}")
            elif name == "outage":
                broker.stop()
                _log(f"link down for {args.outage_s:.0f} s")
                time.sleep(args.outage_s)
                before, _, backlog = agent.outbox()
                t0 = time.monotonic()
                broker.start()

                queued = range(before - backlog + 1, before + 1)

                def backlog_arrived() -> bool:
                    with sub.lock:
                        return all(q in sub.arrived for q in queued)
                _wait(backlog_arrived, 300)
                with sub.lock:  # the subscriber's own arrival times: finer than polling the outbox
                    dt = max((sub.arrived.get(q, time.monotonic()) for q in queued), default=t0) - t0
                dt = max(dt, 1e-3)
                extra = {"backlog": backlog, "drain_s": round(dt, 2), "drain_rate_per_s": round(backlog / dt, 1)}
                _log(f"backlog {backlog} delivered {dt:.2f} s after the broker came back (including its start)")
            elif name == "sigkill":
                for i in range(args.kills):
                    # Kill only once this run of the agent is making events (start-up takes seconds), then at
                    # a random point: mid-publish, mid-commit; sometimes with the link down, so the backlog
                    # that must survive the kill is on disk only.
                    first = agent.last_seq()
                    _wait(lambda f=first: agent.last_seq() > f, 30)
                    link_down = rng.random() < 0.3
                    if link_down:
                        broker.stop()
                    time.sleep(rng.uniform(0.2, 4.0))
                    agent.kill()
                    agent.start()
                    if link_down:
                        time.sleep(rng.uniform(0.5, 3.0))
                        broker.start()
                    _log(f"SIGKILL {i + 1}/{args.kills}")
            elif name == "disk_full":
                for i in range(args.disk_fills):
                    time.sleep(rng.uniform(1, 3))
                    filler = fill_disk(data)
                    time.sleep(rng.uniform(2, 5))
                    filler.unlink(missing_ok=True)
                    _log(f"disk full {i + 1}/{args.disk_fills}")
            elif name == "camera_loss" and camera is not None:
                for i in range(args.camera_losses):
                    time.sleep(rng.uniform(1, 3))
                    camera.stop()
                    time.sleep(rng.uniform(1, 4))
                    camera.start()
                    _log(f"camera loss {i + 1}/{args.camera_losses}")
            time.sleep(1)
            _settle(agent, sub)
            if camera is not None:
                time.sleep(1.5)  # one more health message
                extra = {"camera_reconnects": sub.health.get("camera", {}).get("reconnects")}
            return _tally(name, agent, sub, extra)
        finally:
            agent.kill()
            sub.close()
            broker.stop()
            if camera is not None:
                camera.stop()
            if mounted:
                subprocess.run(["umount", "-l", str(data)], check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short version: few repetitions, a 15 s outage")
    ap.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--restarts", type=int, default=8)
    ap.add_argument("--outage-s", type=float, default=600.0, help="link outage length (default 600 s)")
    ap.add_argument("--disk-fills", type=int, default=4)
    ap.add_argument("--camera-losses", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.kills, args.restarts, args.outage_s, args.disk_fills, args.camera_losses = 3, 2, 15.0, 1, 1
    rng = random.Random(args.seed)
    results = []
    for name in args.only or SCENARIOS:
        _log(f"scenario {name}")
        results.append(run_scenario(name, args, rng))
    if args.json:
        print(json.dumps(results))
    else:
        cols = ("scenario", "generated", "delivered", "duplicated", "dropped_by_policy", "lost")
        print(" | ".join(f"{c:>17}" for c in cols) + " | notes")
        for r in results:
            notes = ", ".join(f"{k}={v}" for k, v in r.items() if k not in cols)
            print(" | ".join(f"{r.get(c, '-')!s:>17}" for c in cols) + f" | {notes}")
    return 1 if any(r.get("lost", 0) != 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
