"""Plate events end to end with the shipped models: one event per car, signed hotlists, alert priority."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import AgentProcess, Broker, Collector, wait_until, write_config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands.signing import sign_command
from edge_agent.core.formats import edit_distance_at_most_1
from edge_agent.pipeline.alpr.reader import DEFAULT_DETECTOR, DEFAULT_OCR
from edge_agent.sources.demo import DemoSource

pytestmark = pytest.mark.skipif(not (DEFAULT_DETECTOR.exists() and DEFAULT_OCR.exists()),
                                reason="plate models not shipped in edge_agent/models")

DEMO = {"car_interval_s": 3.0, "car_speed_px_s": 700.0, "seed": 7}


def _demo_plates(n: int) -> list[str]:
    src = DemoSource(1280, 720, 10, DEMO["car_interval_s"], DEMO["car_speed_px_s"], seed=7, realtime=False)
    src.open()
    while len(src.plates_shown) < n:
        src.read()
    return src.plates_shown[:n]


def _plate_config(tmp_path: Path, port: int, **extra: dict[str, object]) -> Path:
    sections: dict[str, dict[str, object]] = {"camera": {"source": "demo", "fps": 10}, "demo": dict(DEMO),
                                              "alpr": {"enabled": True}, "events": {"motion_events": False}}
    sections.update(extra)
    return write_config(tmp_path / "a.toml", tmp_path / "data", port, **sections)


def test_demo_scene_gives_one_event_per_car(tmp_path: Path, broker: Broker, collector: Collector,
                                            agents: list[AgentProcess]) -> None:
    agents.append(AgentProcess(_plate_config(tmp_path, broker.port), tmp_path / "agent.log").start())
    # 5 cars cross in ~17 s of scene time; give a slow shared CI machine room.
    wait_until(lambda: len(collector.on("/events/plate")) >= 4, 90, "plate events for the first cars")
    time.sleep(4)
    expected = _demo_plates(5)
    events = [m.json() for m in collector.on("/events/plate")]
    texts = [e["text"] for e in events]
    seen = [p for p in expected if p in texts]
    assert len(seen) >= 3, f"expected most of {expected} read, got {texts}"
    for p in seen:
        assert texts.count(p) == 1, f"{p} published {texts.count(p)} times: {texts}"
    e = events[0]
    for key in ("confidence", "low_confidence", "country", "frames", "direction", "alternatives", "crop_jpeg_b64",
                "read_status", "country_confidence", "lane", "clock", "context_jpeg"):
        assert key in e, key
    assert e["frames"] >= 2 and e["direction"] == "left_to_right"
    assert e["country"] == "IT" or e["low_confidence"]
    # The transit record (issue 15.4): no lanes configured, the clock as health last found it, the vehicle.
    assert e["read_status"] in ("read", "partial") and e["lane"] is None
    assert set(e["clock"]) == {"synced", "source", "offset_ms", "max_error_ms"}
    assert e["context_jpeg"] and len(e["context_jpeg"]) * 3 // 4 <= 40 * 1024
    assert all(ev["read_status"] != "unread" for ev in events), "every demo car's plate is readable"


def _keys(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "ops.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, pub


def test_signed_hotlist_alert_goes_out_ahead_of_the_backlog(tmp_path: Path, broker: Broker, collector: Collector,
                                                            agents: list[AgentProcess]) -> None:
    key, pub = _keys(tmp_path)
    cfg = _plate_config(tmp_path, broker.port, events={"motion_events": True},
                        security={"trusted_keys": {"ops": str(pub)}})
    agents.append(AgentProcess(cfg, tmp_path / "agent.log").start())
    wait_until(lambda: bool(collector.on("/health")), 30, "agent online")
    base = "edge/pole-test"
    listed = _demo_plates(8)
    body = {"request_id": "h1", "list_id": "stolen", "action": "replace",
            "plates": [{"text": p, "reason": "test"} for p in listed]}
    signed = sign_command(body, key, "ops", node_id="pole-test", command="hotlist")
    collector.publish(f"{base}/cmd/hotlist", json.dumps({"request_id": "h0", **{k: v for k, v in body.items()
                                                                             if k != "request_id"}}))
    collector.publish(f"{base}/cmd/hotlist", json.dumps(signed))
    collector.publish(f"{base}/cmd/hotlist", json.dumps(signed))  # a replay
    wait_until(lambda: len(collector.on("/reply/h1")) == 2 and bool(collector.on("/reply/h0")), 15, "replies")
    assert "missing signature" in collector.on("/reply/h0")[0].json()["error"]
    r1, r2 = (m.json() for m in collector.on("/reply/h1"))
    assert r1["ok"] is True and r1["entries"] == 8
    assert r2["ok"] is False and "replayed nonce" in r2["error"]

    # Link down: motion and plate events pile up in the outbox, an alert among them.
    collector.close()
    broker.stop()
    time.sleep(20)
    broker.start()
    c2 = Collector(broker.port, "edge/pole-test/events/#")
    try:
        wait_until(lambda: len(c2.events()) >= 6, 40, "the backlog after reconnect")
        evs = c2.events()
        alerts = [i for i, e in enumerate(evs) if e["type"] == "alert"]
        assert alerts, f"no alert among {[e['type'] for e in evs]}"
        first = evs[alerts[0]]
        assert first["list_id"] == "stolen" and first["text"] in listed
        older = [e for e in evs[alerts[0] + 1:] if e["seq"] < first["seq"]]
        assert alerts[0] == 0 or all(e["type"] == "alert" for e in evs[: alerts[0]]), "alerts come first"
        assert older, "the alert overtook older backlog events"
    finally:
        c2.close()


def test_parked_car_is_published_once_and_not_again_after_restart(tmp_path: Path) -> None:
    from edge_agent.commands.hotlist import Hotlists
    from edge_agent.config import Config
    from edge_agent.core.types import PipelineStats
    from edge_agent.pipeline.alpr import PlateReader
    from edge_agent.pipeline.frame_pipeline import FramePipeline
    from edge_agent.sources.base import Frame

    src = DemoSource(1280, 720, 10, car_interval_s=1000, speed_px_s=700, seed=7, realtime=False)
    src.open()
    for _ in range(20):  # the first car is fully in view after ~2 s of scene time
        parked = src.read().image
    cfg = Config.model_validate({"data_dir": str(tmp_path / "data"), "motion": {"scan_interval_s": 2.0},
                                 "events": {"dedup_window_s": 30.0}, "tracking": {"max_delay_s": 3.0}})
    reader = PlateReader()

    def run(start: float) -> tuple[list[str], PipelineStats]:
        stats = PipelineStats()
        pipe = FramePipeline(cfg, reader, stats, Hotlists(tmp_path / "data" / "h.json", True))
        texts = []
        for i in range(600):  # a minute at 10 fps, the car never moves
            t = start + i / 10
            texts += [e.payload["text"] for e in pipe.process(Frame(i, t, t, parked)) if e.type == "plate"]
        texts += [e.payload["text"] for e in pipe.flush() if e.type == "plate"]
        pipe.close()
        return texts, stats

    first, stats1 = run(1000.0)
    assert len(first) == 1, f"one event for the parked car, got {first}"
    assert edit_distance_at_most_1(first[0], src.plates_shown[0]), (first, src.plates_shown[0])
    assert stats1.alpr_runs >= 25, "the periodic scan keeps reading it"
    second, stats2 = run(2000.0)
    assert second == [], "after a restart the parked car is recognised, not published again"
    assert stats2.plates_read > 0 and stats2.plates_repeated >= 1


def test_plates_keep_their_rate_during_a_flood_of_junk_commands(tmp_path: Path, broker: Broker,
                                                                 collector: Collector,
                                                                 agents: list[AgentProcess]) -> None:
    """Issue 13.5: 20 000 junk commands once gave 3 393 fsynced audit lines and slowed plates five-fold."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    _key, pub = _keys(tmp_path)
    cfg = _plate_config(tmp_path, broker.port, security={"trusted_keys": {"ops": str(pub)}},
                        audit={"refusal_summary_s": 2})
    agents.append(AgentProcess(cfg, tmp_path / "agent.log").start())
    wait_until(lambda: bool(collector.on("/events/plate")), 90, "the first plate")
    window = 15.0

    def plates() -> list[tuple[float, float]]:
        """(capture time, arrival time) of each plate event so far."""
        out = []
        for m in collector.on("/events/plate"):
            e = m.json()
            out.append((_epoch(e["frame_ts"]), m.received))
        return out

    assert agents[0].proc is not None
    cpu_at_start = _cpu_s(agents[0].proc.pid)
    t_before = time.time()
    time.sleep(window)
    intruder = Ed25519PrivateKey.generate()
    forged = json.dumps(sign_command({"request_id": "f1", "list_id": "x", "action": "delete"}, intruder, "ops",
                                     node_id="pole-test", command="hotlist"))
    junk = [b'{"request_id": "j1", "list_id": "x"}', forged.encode(), b"{not json", b'{"request_id": ' + b"9" * 5000]
    # The attacker is another client, so the operations room's subscriber is not the one kept busy.
    attacker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
    attacker.connect("127.0.0.1", broker.port)
    attacker.loop_start()
    sent = [0]
    rate = 800.0  # junk commands a second: 12 000 in the window, as the review's 20 000 "while they drained"
    assert agents[0].proc is not None
    cpu_before = _cpu_s(agents[0].proc.pid)
    t_flood = time.time()
    cpu_base = (cpu_before - cpu_at_start) / (t_flood - t_before)

    def flood() -> None:
        while (elapsed := time.time() - t_flood) < window:
            if sent[0] > elapsed * rate:
                time.sleep(0.005)
                continue
            for payload in junk:
                attacker.publish("edge/pole-test/cmd/" + ("hotlist" if sent[0] % 2 else "config"), payload, qos=0)
                sent[0] += 1

    th = threading.Thread(target=flood)
    th.start()
    th.join()
    t_end = time.time()
    cpu_flood = (_cpu_s(agents[0].proc.pid) - cpu_before) / (t_end - t_flood)
    attacker.loop_stop()
    attacker.disconnect()
    time.sleep(5)  # let what was made during the flood arrive
    seen = plates()
    before = [p for p in seen if t_before <= p[0] < t_flood]
    during = [p for p in seen if t_flood <= p[0] < t_end]
    assert sent[0] >= 10_000, sent
    # What a junk command costs the node: receiving it, sizing it, a parse at most (most are dropped by the full
    # queue), no audit line, no reply past 10/s.
    extra_ms = (cpu_flood - cpu_base) * window * 1000 / sent[0]
    print(f"flood: {sent[0]} junk commands, {extra_ms:.3f} ms CPU each, plates {len(before)} before, "
          f"{len(during)} during")
    assert extra_ms < 0.5, f"{extra_ms:.2f} ms of CPU per junk command ({cpu_base:.2f} -> {cpu_flood:.2f} cores)"
    # The demo's cars come at irregular intervals: a rate kept means well above the five-fold slow-down seen.
    assert len(during) >= max(3, 0.5 * len(before)), f"{len(before)} plates before the flood, {len(during)} during"
    late = [round(arrived - captured, 1) for captured, arrived in during]
    assert all(x < 8 for x in late), f"plates made during the flood arrived late: {late} s after capture"
    wait_until(lambda: any(m.json()["entry"]["action"] == "refusals" for m in collector.on("/events/audit")), 20,
               "the refusals summary")
    lines = (tmp_path / "data" / "audit.log").read_text().splitlines()
    assert len(lines) <= window / 2 + 6, f"{len(lines)} audit lines for {sent[0]} junk commands"
    health = collector.on("/health")[-1].json()
    assert health["commands"]["unanswered"] > 0 and health["threads"]["dead"] == []


def _cpu_s(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
