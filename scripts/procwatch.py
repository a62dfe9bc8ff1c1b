# SPDX-License-Identifier: Apache-2.0
"""Shared by scripts/soak.py and scripts/bench_agent.py: a throw-away mosquitto, an MQTT subscriber that
timestamps arrivals, an agent process started on a generated config, and /proc readings of that process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from child_process import die_with_parent
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    def __init__(self, work: Path) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise SystemExit("mosquitto is not installed (apt-get install -y mosquitto)")
        self.port = free_port()
        conf = work / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 0\n")
        self._log = open(work / "mosquitto.log", "ab")  # noqa: SIM115 - lives as long as the broker
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start; see {work / 'mosquitto.log'}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


@dataclass
class Arrival:
    topic: str
    payload: bytes
    at: float  # time.time() when the subscriber got it

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """Subscribes to everything under ``edge/#`` at QoS 1 and keeps each message with its arrival time."""

    def __init__(self, port: int, keep_payload: bool = True) -> None:
        self._lock = threading.Lock()
        self._keep = keep_payload
        self.messages: list[Arrival] = []
        self.counts: dict[str, int] = {}
        self.latest: dict[str, Arrival] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"procwatch-{os.getpid()}")
        self.client.on_connect = lambda c, *_: c.subscribe("edge/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        a = Arrival(msg.topic, bytes(msg.payload), time.time())
        kind = msg.topic.rsplit("/", 1)[-1]
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.latest[kind] = a
            if self._keep and kind != "health":
                self.messages.append(a)

    def health(self) -> dict[str, Any] | None:
        with self._lock:
            a = self.latest.get("health")
        return a.json() if a is not None else None

    def take(self) -> list[Arrival]:
        with self._lock:
            out, self.messages = self.messages, []
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _toml(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


def write_config(path: Path, sections: dict[str, Any]) -> Path:
    lines = [f"{k} = {_toml(v)}" for k, v in sections.items() if not isinstance(v, dict)]
    for name, values in sections.items():
        if isinstance(values, dict):
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


class AgentRun:
    """``edge-agent run`` as a child process, optionally pinned to CPUs (taskset)."""

    def __init__(self, config: Path, log_path: Path, cpus: str | None = None) -> None:
        cmd = [sys.executable, "-m", "edge_agent", "run", "--config", str(config)]
        if cpus is not None:
            if shutil.which("taskset") is None:
                raise SystemExit("taskset is not installed (util-linux); run without pinning")
            cmd = ["taskset", "-c", cpus, *cmd]
        self._log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the agent
        self.log_path = log_path
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=self._log, cwd=REPO,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=die_with_parent)
        self.pid = self.proc.pid  # taskset execs the command: same pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process, all threads (children excluded)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
