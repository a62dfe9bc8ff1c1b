"""Shared fixtures: a real mosquitto broker on a free loopback port, an MQTT collector, agent processes."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from child_process import die_with_parent  # the harness helpers the scripts share

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Broker:
    """A mosquitto process we can stop and restart on the same port (a link outage)."""

    def __init__(self, workdir: Path, persistence: bool = False) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            pytest.fail("mosquitto is not installed (apt-get install -y mosquitto); .ci/run installs it")
        self.exe = exe
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        # Started as root, mosquitto drops to user "mosquitto", who cannot write pytest's private tmp dir.
        conf = f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
        if persistence:
            # Sessions and queued QoS 1 messages survive a restart, as on a production broker.
            (workdir / "mosquitto-db").mkdir(exist_ok=True)
            conf += f"persistence true\npersistence_location {workdir / 'mosquitto-db'}/\nmax_queued_messages 0\n"
        else:
            conf += "persistence false\n"
        self.conf.write_text(conf)
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=log, stderr=log,
                                         preexec_fn=die_with_parent)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not start on port {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    received: float = field(default_factory=time.time)  # when the subscriber got it (wall clock)

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Collector:
    """A subscriber like the operations room's: QoS 1, reconnecting, keeps every message."""

    port: int
    topic: str = "#"
    username: str | None = None
    password: str | None = None
    messages: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"collector-{os.getpid()}-{id(self)}",
                                  clean_session=False)
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(msg.topic, msg.payload, bool(msg.retain)))

    def on(self, suffix: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m.json() for m in self.messages if "/events/" in m.topic]

    def publish(self, topic: str, payload: str | bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def collector(broker: Broker) -> Iterator[Collector]:
    c = Collector(broker.port)
    wait_until(lambda: c.client.is_connected(), 10, "collector to connect")
    time.sleep(0.2)  # let the SUBACK land
    yield c
    c.close()


def _toml(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(v)


def write_config(path: Path, data_dir: Path, port: int, **sections: dict[str, Any]) -> Path:
    """A config for tests: fast demo traffic, short intervals; sections override keys."""
    base: dict[str, dict[str, Any]] = {
        "camera": {"source": "demo", "fps": 20, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "demo": {"car_interval_s": 1.2, "car_speed_px_s": 2400},
        "motion": {"end_after_s": 0.2},
        "mqtt": {"port": port, "reconnect_min_s": 1, "reconnect_max_s": 1},
        "health": {"interval_s": 1},
        "alpr": {"enabled": False},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = ['node_id = "pole-test"', f'data_dir = "{data_dir}"']
    for name, values in base.items():
        lines.append(f"[{name}]")
        for k, v in values.items():
            lines.append(f"{k} = {_toml(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


class AgentProcess:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.log = config, log
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(self.config)],
                                         stdout=out, stderr=out, env=self.env, cwd=REPO, preexec_fn=die_with_parent)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        rc = self.proc.wait(15)
        self.proc = None
        return rc

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for a in started:
        if a.proc is not None:
            a.proc.kill()
            a.proc.wait(10)
