"""The agent end to end against a real mosquitto: schema, outages, SIGKILL, bad cameras, commands."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from conftest import AgentProcess, Broker, Collector, wait_until, write_config

from edge_agent.config import Config
from edge_agent.core.types import Event, PipelineStats
from edge_agent.link.mqtt import MqttLink
from edge_agent.link.outbox import Outbox

ENVELOPE = {"event_id": str, "node_id": str, "seq": int, "ts": str, "type": str}


def _check_envelope(ev: dict[str, Any]) -> None:
    for key, typ in ENVELOPE.items():
        assert isinstance(ev.get(key), typ), f"{key} missing or not {typ.__name__} in {ev}"
    uuid.UUID(ev["event_id"])
    assert ev["ts"].endswith("Z")
    datetime.fromisoformat(ev["ts"].replace("Z", "+00:00"))
    assert ev["node_id"] == "pole-test"


def _seqs(c: Collector) -> list[int]:
    return [e["seq"] for e in c.events()]


def _assert_complete_in_order(seqs: list[int]) -> None:
    """Every seq from the first to the last arrived, and first arrivals are in increasing order."""
    first: list[int] = []
    seen: set[int] = set()
    for s in seqs:
        if s not in seen:
            seen.add(s)
            first.append(s)
    assert first == sorted(first), f"out of order: {first}"
    missing = sorted(set(range(min(seen), max(seen) + 1)) - seen)
    assert not missing, f"missing seqs {missing}"


def test_events_health_status_schema(tmp_path: Path, broker: Broker, collector: Collector,
                                     agents: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: len(collector.on("/events/motion")) >= 2, 30, "two motion events")
    wait_until(lambda: len(collector.on("/health")) >= 1, 10, "a health message")

    status = collector.on("edge/pole-test/status")
    assert status and status[-1].payload == b"online"
    motion = [m.json() for m in collector.on("/events/motion")]
    for ev in motion:
        _check_envelope(ev)
        assert ev["type"] == "motion"
        assert ev["state"] in ("start", "end")
    assert motion[0]["state"] == "start" and motion[0]["boxes"]
    health = collector.on("/health")[-1].json()
    for key in ("uptime_s", "load", "memory", "disk", "frames", "fps", "motion_ms", "inference_ms", "outbox",
                "link", "camera", "models", "cpu_temp_c"):
        assert key in health, key
    assert health["camera"]["state"] == "ok"
    assert health["link"]["state"] == "connected"
    assert health["frames"]["in"] > 0 and health["frames"]["processed"] > 0

    # Retained: a newcomer (the operations room after a restart) sees status and health at once.
    late = Collector(broker.port, "edge/pole-test/+")
    try:
        wait_until(lambda: len(late.messages) >= 2, 10, "retained status and health")
        retained = {m.topic.rsplit("/", 1)[1]: m for m in late.messages if m.retain}
        assert retained["status"].payload == b"online"
        assert json.loads(retained["health"].payload)["node_id"] == "pole-test"
    finally:
        late.close()

    assert agent.terminate() == 0
    wait_until(lambda: collector.on("/status")[-1].payload == b"offline", 10, "status offline after stop")


def test_broker_outage_loses_nothing(tmp_path: Path, agents: list[AgentProcess]) -> None:
    # A broker that keeps sessions across restarts, as in production: the operations room's
    # subscription and the messages queued for it survive, so any gap would be the agent's fault.
    broker = Broker(tmp_path, persistence=True)
    broker.start()
    collector = Collector(broker.port)
    try:
        wait_until(lambda: collector.client.is_connected(), 10, "collector to connect")
        time.sleep(0.3)
        cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port)
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        agents.append(agent)
        wait_until(lambda: len(_seqs(collector)) >= 3, 30, "events before the outage")
        broker.stop()
        before = max(_seqs(collector))
        time.sleep(10)  # events keep coming into the outbox meanwhile
        broker.start()
        # Everything made during the outage must arrive: wait until we are well past what was made then.
        wait_until(lambda: max(_seqs(collector)) >= before + 10, 60, "queued events after the broker came back")
        time.sleep(1)
        _assert_complete_in_order(_seqs(collector))
        assert "link lost" in agent.output()
    finally:
        collector.close()
        broker.stop()


def test_sigkill_then_restart_delivers_outbox(tmp_path: Path, broker: Broker, collector: Collector,
                                              agents: list[AgentProcess]) -> None:
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "a.toml", data, broker.port)
    # Phase 1: no broker reachable (wrong port): events pile up in the outbox, then SIGKILL.
    offline = write_config(tmp_path / "offline.toml", data, 1)
    a1 = AgentProcess(offline, tmp_path / "a1.log").start()
    agents.append(a1)
    time.sleep(6)
    a1.kill()
    assert "unreachable" in a1.output()
    # Phase 2: the same data dir, the real broker: the backlog is delivered, then new events follow.
    a2 = AgentProcess(cfg, tmp_path / "a2.log").start()
    agents.append(a2)
    wait_until(lambda: len(_seqs(collector)) >= 8, 30, "backlog delivery after restart")
    time.sleep(2)
    a2.kill()  # mid-stream again
    a3 = AgentProcess(cfg, tmp_path / "a3.log").start()
    agents.append(a3)
    n = len(_seqs(collector))
    wait_until(lambda: len(_seqs(collector)) >= n + 3, 30, "events after the second restart")
    seqs = _seqs(collector)
    assert min(seqs) == 1, "the events made while offline before the SIGKILL were delivered"
    _assert_complete_in_order(seqs)
    ids = {e["event_id"] for e in collector.events()}
    assert len(ids) == len(set(seqs)), "one event_id per seq: duplicates are re-deliveries, not new events"


def test_unreachable_broker_keeps_running_and_says_so_once(tmp_path: Path, agents: list[AgentProcess]) -> None:
    from conftest import free_port

    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", free_port())
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    time.sleep(5)
    assert agent.proc is not None and agent.proc.poll() is None, "agent must keep running without a broker"
    out = agent.output()
    assert out.count("unreachable; events are queued") == 1, out
    assert "Traceback" not in out
    assert agent.terminate() == 0


def test_camera_that_fails_to_open_is_retried_and_reported(tmp_path: Path, broker: Broker,
                                                           collector: Collector,
                                                           agents: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port,
                       camera={"source": "rtsp://user:secret@127.0.0.1:1/stream", "read_timeout_s": 1})
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: any(m.json()["camera"]["state"] == "down" for m in collector.on("/health")), 30,
               "health reporting the camera down")
    h = collector.on("/health")[-1].json()
    assert "cannot open" in h["camera"]["error"]
    assert "secret" not in h["camera"]["source"] and "secret" not in agent.output(), "credentials leaked"
    assert h["link"]["state"] == "connected", "the agent keeps running and reporting"


def test_camera_dies_mid_stream_and_comes_back(tmp_path: Path, broker: Broker, collector: Collector,
                                               agents: list[AgentProcess]) -> None:
    from mjpeg_server import MjpegServer

    server = MjpegServer()
    server.start()
    try:
        cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port,
                           camera={"source": server.url, "read_timeout_s": 2})
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        agents.append(agent)

        def camera(state: str) -> bool:
            h = collector.on("/health")
            return bool(h) and h[-1].json()["camera"]["state"] == state

        wait_until(lambda: camera("ok"), 30, "camera ok")
        server.stop()
        wait_until(lambda: camera("down"), 30, "camera down after the stream died")
        server.start()
        wait_until(lambda: camera("ok"), 30, "camera back")
        h = collector.on("/health")[-1].json()
        assert h["camera"]["reconnects"] >= 1
        assert agent.proc is not None and agent.proc.poll() is None
    finally:
        server.stop()


def test_commands_ping_unknown_and_malformed(tmp_path: Path, broker: Broker, collector: Collector,
                                            agents: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port)
    agents.append(AgentProcess(cfg, tmp_path / "agent.log").start())
    wait_until(lambda: bool(collector.on("/health")), 30, "agent online")
    base = "edge/pole-test"
    collector.publish(f"{base}/cmd/ping", json.dumps({"request_id": "r1"}))
    collector.publish(f"{base}/cmd/selfdestruct", json.dumps({"request_id": "r2"}))
    collector.publish(f"{base}/cmd/ping", b"{not json")
    collector.publish(f"{base}/cmd/ping", json.dumps({"request_id": "r3"}))
    wait_until(lambda: len(collector.on("/reply/r3")) == 1, 15, "reply r3")
    r1 = collector.on("/reply/r1")[0].json()
    assert r1["ok"] is True and r1["node_id"] == "pole-test"
    r2 = collector.on("/reply/r2")[0].json()
    assert r2["ok"] is False and "unknown command" in r2["error"]
    wait_until(lambda: collector.on("/health")[-1].json()["commands"]["rejected"] >= 2, 10, "rejections counted")


def test_events_stored_while_stopping_go_out_before_the_link_closes(tmp_path: Path, broker: Broker,
                                                                     collector: Collector) -> None:
    cfg = Config.model_validate({"node_id": "pole-stop", "mqtt": {"port": broker.port}})
    outbox = Outbox(tmp_path / "o.sqlite3", cfg.node_id, 1000, 10**8)
    link = MqttLink(cfg, outbox, PipelineStats(), lambda _n, _p: None)
    link.start()
    try:
        wait_until(lambda: link.connected, 10, "the link to connect")
        # Stored without a wake-up, the way the last events of a shutdown arrive just before stop().
        seqs = [outbox.append(Event("motion", {"state": "end", "i": i})) for i in range(5)]
    finally:
        link.stop()
    assert outbox.depth == 0, "every event was acknowledged before the link closed"
    wait_until(lambda: len(collector.on("/events/motion")) == 5, 5, "the five events")
    assert [m.json()["seq"] for m in collector.on("/events/motion")] == seqs
    outbox.close()
