# SPDX-License-Identifier: Apache-2.0
"""Security checks on a running agent: it listens on no port, a command signed by an unknown key changes
nothing, and secrets (MQTT password, upload bearer tokens, camera URL credentials) appear in no log line and
no published message. (MQTT TLS with a wrong CA: tests/test_tls.py.)"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conftest import AgentProcess, Broker, Collector, free_port, wait_until, write_config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands.signing import sign_command
from edge_agent.core.keys import generate_keypair

NODE = "edge/pole-test"


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed between listing and reading
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _sockets(pid: int) -> list[tuple[str, str, str, str]]:
    """(protocol, local address, remote address, state) of every TCP/UDP socket the process holds."""
    mine = _socket_inodes(pid)
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        table = Path(f"/proc/{pid}/net/{proto}")
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            f = line.split()
            if int(f[9]) in mine:
                out.append((proto, f[1], f[2], f[3]))
    return out


def _listening(socks: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    # TCP state 0A is LISTEN; an unconnected UDP socket (remote all zeros) receives datagrams from anyone.
    return [s for s in socks if (s[0].startswith("tcp") and s[3] == "0A")
            or (s[0].startswith("udp") and set(s[2].replace(":", "")) == {"0"})]


def _ops_key(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    pub = tmp_path / "ops" / "ops1.pub"
    return generate_keypair(tmp_path / "ops" / "ops1.key", pub), pub


def _with_trusted_key(cfg: Path, pub: Path) -> Path:
    cfg.write_text(cfg.read_text() + f'[security.trusted_keys]\nops1 = "{pub}"\n')
    return cfg


def _replies(collector: Collector, rid: str) -> list[dict[str, Any]]:
    return [m.json() for m in collector.on(f"/reply/{rid}")]


def _bound(command: str, node: str = "pole-test") -> dict[str, str]:
    return {"node_id": node, "command": command}


def _send(collector: Collector, name: str, body: dict[str, Any]) -> None:
    collector.publish(f"{NODE}/cmd/{name}", json.dumps(body))


def test_agent_opens_no_listening_port(tmp_path: Path, broker: Broker, collector: Collector,
                                       agents: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "agent.toml", tmp_path / "data", broker.port,
                       camera={"width": 320, "height": 240, "fps": 10},
                       recorder={"enabled": True, "segment_s": 2})
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    assert agent.proc is not None
    wait_until(lambda: bool(collector.on("/health")), 30, "the agent's first health message")
    # Every thread is up once health flows; sample a few times in case something binds late.
    seen = []
    for _ in range(5):
        socks = _sockets(agent.proc.pid)
        seen.extend(socks)
        assert not _listening(socks), f"the agent listens: {_listening(socks)}\n{agent.output()}"
        time.sleep(0.5)
    # The inspection works: it does see the agent's own connection to the broker (state 01, ESTABLISHED).
    broker_port = f":{broker.port:04X}"
    assert any(s[0].startswith("tcp") and s[2].endswith(broker_port) and s[3] == "01" for s in seen), seen


def test_command_signed_by_an_unknown_key_does_nothing(tmp_path: Path, broker: Broker, collector: Collector,
                                                       agents: list[AgentProcess]) -> None:
    ops, pub = _ops_key(tmp_path)
    data = tmp_path / "data"
    cfg = _with_trusted_key(write_config(tmp_path / "agent.toml", data, broker.port,
                                         camera={"width": 320, "height": 240, "fps": 10}), pub)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: bool(collector.on("/status")) and bool(collector.on("/health")), 30, "the agent online")
    intruder = Ed25519PrivateKey.generate()
    hot = {"list_id": "stolen", "action": "replace", "plates": ["AB123CD"]}
    _send(collector, "hotlist", sign_command({"request_id": "x1", **hot}, intruder, "intruder", **_bound("hotlist")))
    # The name of a trusted key, signed by another:
    _send(collector, "hotlist", sign_command({"request_id": "x2", **hot}, intruder, "ops1", **_bound("hotlist")))
    _send(collector, "config", sign_command({"request_id": "x3", "set": {"motion.threshold": 200}}, intruder,
                                            "intruder", **_bound("config")))
    wait_until(lambda: all(_replies(collector, r) for r in ("x1", "x2", "x3")), 15, "replies to the forged commands")
    r1, r2, r3 = (_replies(collector, r)[0] for r in ("x1", "x2", "x3"))
    assert r1["ok"] is False and r1["error"].startswith("unknown key 'intruder'"), r1
    assert r2["ok"] is False and r2["error"].startswith("bad signature"), r2
    assert r3["ok"] is False and r3["error"].startswith("unknown key 'intruder'"), r3
    time.sleep(1.5)  # a wrongly accepted config would restart the agent within 0.5 s
    assert not (data / "hotlists.json").exists()
    assert not (data / "remote-config.json").exists() and not (data / "remote-config.pending.json").exists()
    health = collector.on("/health")[-1].json()
    assert health["config"]["revision"] == 0 and health["config"]["state"] == "file", health["config"]
    assert health["commands"]["rejected"] >= 3
    assert agent.proc is not None and agent.proc.poll() is None
    # Control: the same command signed by the trusted key is applied, so the refusals above are the key's doing.
    _send(collector, "hotlist", sign_command({"request_id": "ok1", **hot}, ops, "ops1", **_bound("hotlist")))
    wait_until(lambda: bool(_replies(collector, "ok1")), 15, "reply to the properly signed command")
    assert _replies(collector, "ok1")[0]["ok"] is True
    assert json.loads((data / "hotlists.json").read_text())["lists"] == {"stolen": {"AB123CD": ""}}


def test_secrets_never_appear_in_logs_or_published_messages(tmp_path: Path, broker: Broker, collector: Collector,
                                                            agents: list[AgentProcess]) -> None:
    mqtt_pw, cam_pw, token = "mqtt-pw-Zq81xS3cret", "cam-pw-Kf02yS3cret", "bearer-tok-Wm55S3cret"
    url_pw, url_query, cam_query = "url-pw-Hh3S3cret", "qtok-Lr9S3cret", "cam-q-Pp7S3cret"
    ops, pub = _ops_key(tmp_path)
    pw_file = tmp_path / "mqtt.pw"
    pw_file.write_text(mqtt_pw + "\n")
    pw_file.chmod(0o600)
    data = tmp_path / "data"
    # A camera that refuses (closed port): the error paths are where URLs tend to end up in messages.
    camera = f"rtsp://admin:{cam_pw}@127.0.0.1:{free_port()}/stream1?channel=1&pwd={cam_query}"
    cfg = _with_trusted_key(write_config(
        tmp_path / "agent.toml", data, broker.port,
        camera={"source": camera, "width": 320, "height": 240, "fps": 10, "reconnect_min_s": 0.2,
                "reconnect_max_s": 0.5},
        mqtt={"username": "edge", "password_file": str(pw_file)}, log={"level": "DEBUG"},
        recorder={"enabled": True, "segment_s": 2}), pub)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: bool(collector.on("/health")), 30, "the agent's first health message")
    clip = {"camera": "cam0", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:10Z", "agency": "City Police",
            "purpose": "Proc. 1234/2026", "operator": "Isp. M. Rossi",
            "upload_url": f"https://agency:{url_pw}@evidence.example/in?token={url_query}", "upload_token": token}
    # Validly signed, refused later on (so recorded one by one, with the URL reduced to its host):
    _send(collector, "clip", sign_command({"request_id": "c1", **clip}, ops, "ops1", **_bound("clip")))
    _send(collector, "clip", {"request_id": "c2", **clip})  # unsigned
    _send(collector, "clip", {"request_id": "c3", **clip, "upload_token": 5})  # malformed, logged with its reason
    _send(collector, "ping", {"request_id": "p1"})
    wait_until(lambda: all(_replies(collector, r) for r in ("c1", "c2", "c3", "p1")), 20, "the replies")
    first = len(collector.on("/health"))
    wait_until(lambda: len(collector.on("/health")) >= first + 2, 20, "two more health messages")
    agent.terminate()

    health = collector.on("/health")[-1].json()
    shown = "rtsp://***@127.0.0.1:" + camera.rsplit(":", 1)[1].replace(cam_query, "***")
    assert health["camera"]["source"] == shown, health["camera"]
    assert health["camera"]["state"] == "down"
    assert collector.on("/events/audit"), "the clip requests were audited"
    places = {"agent log": agent.output(), "audit log": (data / "audit.log").read_text(errors="replace")}
    for m in collector.messages:
        if "/cmd/" in m.topic:
            continue  # our own requests, not something the node published
        places[f"message on {m.topic}"] = m.payload.decode(errors="replace")
    for secret in (mqtt_pw, cam_pw, cam_query, token, url_pw, url_query):
        leaks = [where for where, text in places.items() if secret in text]
        assert not leaks, f"{secret!r} appears in {leaks}"
