# SPDX-License-Identifier: Apache-2.0
"""MQTT 5 acknowledgements against a real mosquitto (issue 14.2).

A publish the broker refuses (PUBACK reason >= 0x80) keeps its event in the outbox and is retried
with backoff until the broker takes it, in order; a refused command subscription shows in health;
the persistent session (clean_start=False + session expiry) survives a restart; MQTT 3.1.1 stays
selectable, and cannot see a refusal at all.
"""

from __future__ import annotations

import getpass
import glob
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, Broker, Collector, wait_until, write_config
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from test_agent_mqtt import _assert_complete_in_order

from edge_agent.config import Config, ConfigError, load
from edge_agent.core.types import PRIORITY_ALERT, Event, PipelineStats
from edge_agent.link.mqtt import MqttLink
from edge_agent.link.outbox import Outbox

# The node may say it is alive and answer, but not send events: what a wrong ACL line looks like.
ACL_NO_EVENTS = """\
pattern write edge/%u/status
pattern write edge/%u/health
pattern write edge/%u/reply/#
pattern read edge/%u/cmd/#
user ops
topic read edge/#
topic write edge/+/cmd/#
"""
ACL_ALL = ACL_NO_EVENTS + "pattern write edge/%u/events/#\n"


def _acl_broker(tmp_path: Path, acl_text: str) -> tuple[Broker, Path]:
    broker = Broker(tmp_path)
    acl = tmp_path / "acl"
    acl.write_text(acl_text)
    broker.conf.write_text(broker.conf.read_text() + f"acl_file {acl}\n")
    broker.start()
    return broker, acl


def _allow_events(broker: Broker, acl: Path) -> None:
    acl.write_text(ACL_ALL)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)  # mosquitto reloads the ACL file, also for connected clients


def _ops(port: int, password: str | None = None) -> Collector:
    c = Collector(port, topic="edge/#", username="ops", password=password)
    wait_until(lambda: c.client.is_connected(), 10, "the operations room's subscriber to connect")
    time.sleep(0.3)  # the SUBACK
    return c


def _health(c: Collector) -> dict[str, Any] | None:
    h = c.on("/health")
    return h[-1].json() if h else None


def test_refused_events_stay_queued_until_the_acl_allows_them(tmp_path: Path, agents: list[AgentProcess]) -> None:
    broker, acl = _acl_broker(tmp_path, ACL_NO_EVENTS)
    ops = _ops(broker.port)
    try:
        cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port, mqtt={"username": "pole-test"})
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        agents.append(agent)

        def refused_with_backlog() -> bool:
            h = _health(ops)
            return h is not None and h["link"]["publish_refused"] > 0 and h["outbox"]["depth"] >= 5

        wait_until(refused_with_backlog, 40, "health showing refused publishes and a backlog")
        h = _health(ops)
        assert h is not None
        assert not ops.events(), "the broker refused every event"
        link = h["link"]
        assert link["state"] == "connected" and link["protocol"] == "5"
        # mosquitto's acl_file grants every SUBSCRIBE and applies read rights on delivery.
        assert link["subscription"] == "granted"
        refusal = link["last_refusal"]
        assert refusal["topic"].startswith("edge/pole-test/events/"), refusal
        assert refusal["reason"] == "Not authorized (0x87)"
        assert refusal["at"].endswith("Z")
        made = h["outbox"]["last_seq"]
        assert h["outbox"]["depth"] == made, "nothing was acknowledged, nothing deleted"

        _allow_events(broker, acl)
        wait_until(lambda: set(range(1, made + 1)) <= {e["seq"] for e in ops.events()}, 40,
                   f"every event made while refused (1..{made}) to arrive")
        seqs = [e["seq"] for e in ops.events()]
        assert min(seqs) == 1
        _assert_complete_in_order(seqs)
        wait_until(lambda: (x := _health(ops)) is not None and x["outbox"]["depth"] <= 3, 20, "the backlog to drain")

        out = agent.output()
        errors = [ln for ln in out.splitlines() if "refused a publish" in ln]
        # Many refusals, one line: the same reason is logged at most once a minute.
        assert len(errors) == 1, errors
        assert "ERROR" in errors[0] and "edge/pole-test/events/" in errors[0] and "Not authorized (0x87)" in errors[0]
        assert "accepts events again" in out
        assert agent.terminate() == 0
    finally:
        ops.close()
        broker.stop()


def test_refusals_back_off_and_alerts_go_first_when_accepted_again(tmp_path: Path) -> None:
    broker, acl = _acl_broker(tmp_path, ACL_NO_EVENTS)
    ops = _ops(broker.port)
    cfg = Config.model_validate({"node_id": "pole-test", "mqtt": {
        "port": broker.port, "username": "pole-test", "reconnect_min_s": 1, "reconnect_max_s": 4}})
    outbox = Outbox(tmp_path / "o.sqlite3", cfg.node_id, 1000, 10**8)
    stats = PipelineStats()
    link = MqttLink(cfg, outbox, stats, lambda _n, _p: None)
    # Queued before the link starts, so the first window holds all 20: appended while the publisher runs,
    # it could wake after the first few, be refused, and then probe the rest one at a time (CI saw this).
    motion = [outbox.append(Event("motion", {"state": "start", "i": i})) for i in range(20)]
    link.start()
    try:
        wait_until(lambda: link.connected, 10, "the link to connect")
        link.notify()
        wait_until(lambda: stats.link_publish_refused >= 20, 10, "the first window to be refused")
        alert = outbox.append(Event("alert", {"text": "AB123CD"}, PRIORITY_ALERT))
        motion += [outbox.append(Event("motion", {"state": "end", "i": i})) for i in range(3)]
        link.notify()
        before = stats.link_publish_refused
        time.sleep(3.5)
        # One probe at a time, after 1 s, then 2 s, ...: not a retry storm.
        assert stats.link_publish_refused - before <= 2, stats.link_publish_refused - before
        assert outbox.depth == 24 and not ops.events()

        _allow_events(broker, acl)
        wait_until(lambda: outbox.depth == 0, 20, "the outbox to drain once the broker accepts")
        wait_until(lambda: len(ops.events()) >= 24, 10, "every event at the operations room")
        got = [e["seq"] for e in ops.events()]
        assert got[0] == alert, f"the alert goes ahead of the backlog: {got}"
        assert [s for s in got if s != alert] == motion, "the rest in order, each once"
    finally:
        link.stop()
        ops.close()
        broker.stop()
        outbox.close()


def test_a_refused_cmd_subscription_shows_in_health_and_log(tmp_path: Path, agents: list[AgentProcess]) -> None:
    # mosquitto's acl_file never refuses a SUBSCRIBE; its dynamic-security plugin does (SUBACK 0x87).
    plugin = next(iter(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")), None)
    if plugin is None:
        pytest.skip("mosquitto's dynamic security plugin is not installed")
    dynsec = tmp_path / "dynsec.json"
    subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(dynsec), "admin", "admin-pw"], check=True,
                   capture_output=True)
    broker = Broker(tmp_path)
    broker.conf.write_text(f"user {getpass.getuser()}\nlistener {broker.port} 127.0.0.1\nallow_anonymous false\n"
                           f"plugin {plugin}\nplugin_opt_config_file {dynsec}\npersistence false\n")
    broker.start()
    ops: Collector | None = None
    try:
        ctrl = ["mosquitto_ctrl", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "admin", "-P", "admin-pw", "dynsec"]
        # The node may publish under its base but subscribe to nothing (the plugin's default).
        for args in (["createClient", "pole-test", "-p", "node-pw"], ["createRole", "node"],
                     ["addRoleACL", "node", "publishClientSend", "edge/pole-test/#", "allow"],
                     ["addClientRole", "pole-test", "node"],
                     ["createClient", "ops", "-p", "ops-pw"], ["createRole", "ops"],
                     ["addRoleACL", "ops", "subscribePattern", "edge/#", "allow"], ["addClientRole", "ops", "ops"]):
            subprocess.run(ctrl + args, check=True, capture_output=True)
        ops = _ops(broker.port, "ops-pw")
        pw = tmp_path / "pw"
        pw.write_text("node-pw\n")
        pw.chmod(0o600)
        cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port,
                           mqtt={"username": "pole-test", "password_file": str(pw)})
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        agents.append(agent)
        wait_until(lambda: (h := _health(ops)) is not None and h["link"]["subscription"] != "pending", 30,
                   "health with the broker's answer to the cmd subscription")
        h = _health(ops)
        assert h is not None and h["link"]["subscription"] == "refused: Not authorized (0x87)", h["link"]
        assert ops.events(), "publishing still works"
        line = next(ln for ln in agent.output().splitlines() if "refused the subscription" in ln)
        assert "ERROR" in line and "edge/pole-test/cmd/+" in line and "Not authorized" in line

        # The ACL fixed at the broker (the plugin drops the clients of a changed role): commands arrive.
        for args in (["addRoleACL", "node", "subscribePattern", "edge/pole-test/cmd/#", "allow"],
                     ["addRoleACL", "ops", "publishClientSend", "edge/+/cmd/#", "allow"]):
            subprocess.run(ctrl + args, check=True, capture_output=True)
        wait_until(lambda: (h := _health(ops)) is not None and h["link"]["subscription"] == "granted", 20,
                   "the subscription granted once the ACL allows it")
        ops.publish("edge/pole-test/cmd/ping", json.dumps({"request_id": "after-fix"}))
        wait_until(lambda: bool(ops.on("/reply/after-fix")), 20, "the reply to a command after the fix")
    finally:
        if ops is not None:
            ops.close()
        broker.stop()


def test_a_refused_subscription_is_asked_again_without_a_reconnect(tmp_path: Path, broker: Broker) -> None:
    cfg = Config.model_validate({"node_id": "pole-test", "mqtt": {"port": broker.port, "reconnect_max_s": 1}})
    outbox = Outbox(tmp_path / "o.sqlite3", cfg.node_id, 1000, 10**8)
    stats = PipelineStats()
    link = MqttLink(cfg, outbox, stats, lambda _n, _p: None)
    link.start()
    try:
        wait_until(lambda: stats.link_subscription == "granted", 10, "the first SUBACK")
        # As a broker whose ACL refused it: the SUBACK paho's network thread would hand over.
        link._on_subscribe(link._client, None, 1, [ReasonCode(PacketTypes.SUBACK, identifier=0x87)], None)
        assert stats.link_subscription == "refused: Not authorized (0x87)"
        wait_until(lambda: stats.link_subscription == "granted", 5, "the subscription asked for again")
        assert stats.link_reconnects == 0
    finally:
        link.stop()
        outbox.close()


def test_commands_sent_while_the_agent_is_down_arrive_after_a_restart(tmp_path: Path, broker: Broker,
                                                                      collector: Collector,
                                                                      agents: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port)
    first = AgentProcess(cfg, tmp_path / "a1.log").start()
    agents.append(first)
    wait_until(lambda: bool(collector.on("/health")), 30, "the agent online")
    first.kill()
    # Queued in the node's session on the broker: only there while the agent is down.
    collector.publish("edge/pole-test/cmd/ping", json.dumps({"request_id": "while-down"}))
    time.sleep(0.5)
    agents.append(AgentProcess(cfg, tmp_path / "a2.log").start())
    wait_until(lambda: bool(collector.on("/reply/while-down")), 30, "the reply to the command sent while down")
    assert collector.on("/reply/while-down")[0].json()["ok"] is True
    # MQTT 5 ("p5"), never a clean start ("c0"), on the first connect as on every later one.
    connects = [ln for ln in broker.log.read_text().splitlines() if "as edge-agent-pole-test" in ln]
    assert len(connects) >= 2 and all("(p5, c0," in ln for ln in connects), connects


def test_mqtt_311_is_selectable_and_cannot_see_a_refusal(tmp_path: Path, agents: list[AgentProcess]) -> None:
    broker, _acl = _acl_broker(tmp_path, ACL_NO_EVENTS)
    ops = _ops(broker.port)
    try:
        cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port,
                           mqtt={"username": "pole-test", "protocol": "3.1.1"})
        agents.append(AgentProcess(cfg, tmp_path / "agent.log").start())
        wait_until(lambda: (h := _health(ops)) is not None and h["outbox"]["last_seq"] >= 3, 30, "a few events made")
        time.sleep(1.0)
        h = _health(ops)
        assert h is not None and h["link"]["protocol"] == "3.1.1"
        # What docs/mqtt.md warns about: mosquitto acknowledges the publishes its ACL drops, so under
        # 3.1.1 the node deletes events nobody received, and cannot tell.
        assert h["link"]["publish_refused"] == 0 and h["outbox"]["depth"] <= 1
        assert not ops.events()
    finally:
        ops.close()
        broker.stop()


def test_protocol_and_session_expiry_are_validated(tmp_path: Path) -> None:
    assert Config().mqtt.protocol == "5" and Config().mqtt.session_expiry_s == 7 * 24 * 3600
    bad = tmp_path / "bad.toml"
    bad.write_text('[mqtt]\nprotocol = "4"\n')
    with pytest.raises(ConfigError, match=r"mqtt\.protocol"):
        load(bad)
    bad.write_text("[mqtt]\nsession_expiry_s = 0\n")
    with pytest.raises(ConfigError, match=r"mqtt\.session_expiry_s"):
        load(bad)


def test_doctor_under_311_warns_that_it_cannot_check_publish_rights(broker: Broker) -> None:
    from edge_agent.field.doctor import check_mqtt

    v311 = Config.model_validate({"node_id": "pole-test", "mqtt": {"port": broker.port, "protocol": "3.1.1"}})
    rights = check_mqtt(v311)[1]
    assert rights.check == "mqtt-rt" and rights.status == "WARN", rights
    assert "3.1.1" in rights.message and 'mqtt.protocol = "5"' in rights.fix
    assert check_mqtt(Config.model_validate({"node_id": "pole-test", "mqtt": {"port": broker.port}}))[1].status == "OK"
