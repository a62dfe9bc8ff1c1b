# SPDX-License-Identifier: Apache-2.0
"""The operations-room tools against a real agent on a real mosquitto: ``ops hotlist`` and ``ops config`` sign,
send and follow the replies; ``ops monitor --once --json`` says who is up, down or stale, with its exit code."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import AgentProcess, Broker, Collector, wait_until, write_config

from edge_agent.cli import main
from edge_agent.core.keys import generate_keypair


def _ops_key(tmp_path: Path) -> tuple[Path, Path]:
    key, pub = tmp_path / "ops" / "ops1.key", tmp_path / "ops" / "ops1.pub"
    generate_keypair(key, pub)
    return key, pub


def _agent(tmp_path: Path, broker: Broker, pub: Path, agents: list[AgentProcess], **extra: dict[str, object]) -> Path:
    cfg = write_config(tmp_path / "agent.toml", tmp_path / "data", broker.port,
                       camera={"width": 320, "height": 240, "fps": 10},
                       security={"trusted_keys": {"ops1": str(pub)}}, **extra)
    agents.append(AgentProcess(cfg, tmp_path / "agent.log").start())
    return cfg


def _signing(key: Path, broker: Broker) -> list[str]:
    return ["--key", str(key), "--key-id", "ops1", "--port", str(broker.port), "--timeout", "30"]


def test_ops_hotlist_signs_sends_and_reports(tmp_path: Path, broker: Broker, collector: Collector,
                                             agents: list[AgentProcess], capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = _ops_key(tmp_path)
    _agent(tmp_path, broker, pub, agents)
    wait_until(lambda: bool(collector.on("/health")), 30, "the agent online")
    plates = tmp_path / "plates.txt"
    plates.write_text("# stolen cars\nAB123CD,stolen 2026-11-01\nxy-987 zw\n")
    rc = main(["ops", "hotlist", "--node", "pole-test", "--list-id", "stolen", "--action", "replace",
               "--plates-file", str(plates), *_signing(key, broker)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert '"ok": true' in out and '"entries": 2' in out
    hot = json.loads((tmp_path / "data" / "hotlists.json").read_text())["lists"]
    assert hot == {"stolen": {"AB123CD": "stolen 2026-11-01", "XY987ZW": ""}}
    # Signed once for the whole fleet ("*"): accepted by this node too.
    rc = main(["ops", "hotlist", "--node", "pole-test", "--fleet", "--list-id", "stolen", "--action", "remove",
               "--plate", "AB123CD", *_signing(key, broker)])
    assert rc == 0, capsys.readouterr().out
    assert json.loads((tmp_path / "data" / "hotlists.json").read_text())["lists"] == {"stolen": {"XY987ZW": ""}}
    # A refusal is exit 1 with the node's reason shown.
    rc = main(["ops", "hotlist", "--node", "pole-test", "--list-id", "bad/id", "--action", "add", "--plate", "AB1",
               *_signing(key, broker)])
    assert rc == 1 and "list_id" in capsys.readouterr().out
    # Bad arguments are exit 2 before anything is sent.
    assert main(["ops", "hotlist", "--node", "pole-test", "--list-id", "x", "--action", "add",
                 *_signing(key, broker)]) == 2
    assert "needs plates" in capsys.readouterr().err
    assert main(["ops", "hotlist", "--node", "p", "--list-id", "x", "--action", "delete", "--cert-file", "c.pem",
                 *_signing(key, broker)]) == 2
    assert "--cert-file and --key-file go together" in capsys.readouterr().err


def test_ops_config_follows_the_change_to_committed(tmp_path: Path, broker: Broker, collector: Collector,
                                                   agents: list[AgentProcess],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = _ops_key(tmp_path)
    _agent(tmp_path, broker, pub, agents, remote_config={"self_check_s": 2})
    wait_until(lambda: bool(collector.on("/health")), 30, "the agent online")
    rc = main(["ops", "config", "--node", "pole-test", "--set", "motion.threshold=33", *_signing(key, broker)])
    out = capsys.readouterr().out
    assert rc == 0, out
    states = [json.loads(line)["state"] for line in out.splitlines()[1:]]
    assert states == ["pending self-check", "committed"], out
    rc = main(["ops", "config", "--node", "pole-test", "--set", "alpr.min_confidence=1.0", *_signing(key, broker)])
    assert rc == 1 and "outside what a remote change may set" in capsys.readouterr().out


def test_ops_monitor_once_json_says_who_is_down_or_stale(tmp_path: Path, broker: Broker, collector: Collector,
                                                         agents: list[AgentProcess],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    _key, pub = _ops_key(tmp_path)
    _agent(tmp_path, broker, pub, agents)
    wait_until(lambda: bool(collector.on("/health")), 30, "the agent online")
    args = ["ops", "monitor", "--once", "--json", "--wait", "1", "--port", str(broker.port), "--stale-after", "30"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["nodes"]
    assert row["node"] == "pole-test" and row["state"] == "online" and row["camera"] == "ok"
    assert row["link"] == "connected" and row["self_check_ok"] in (True, False) and row["health_age_s"] < 30
    # A node whose retained status still says online but whose health is old (a broker crash) is stale.
    collector.client.publish("edge/ghost/status", "online", qos=1, retain=True).wait_for_publish(5)
    old = {"node_id": "ghost", "ts": "2026-01-01T00:00:00.000Z", "camera": {"state": "ok"}}
    collector.client.publish("edge/ghost/health", json.dumps(old), qos=1, retain=True).wait_for_publish(5)
    assert main([*args, "--expect", "pole-missing"]) == 1
    rows = {r["node"]: r for r in json.loads(capsys.readouterr().out)["nodes"]}
    assert rows["ghost"]["state"] == "stale" and rows["pole-missing"]["state"] == "missing"
    assert rows["pole-test"]["state"] == "online"
    # Killed: the broker publishes its Last Will (offline) and the monitor says down.
    agents[0].kill()
    time.sleep(1.0)
    assert main([*args]) == 1
    rows = {r["node"]: r for r in json.loads(capsys.readouterr().out)["nodes"]}
    assert rows["pole-test"]["state"] == "down"
    # Junk on the topics it reads is ignored, not a crash; the table form works too.
    collector.client.publish("edge/junk/health", b"\xff" * 10, qos=1, retain=True).wait_for_publish(5)
    assert main(["ops", "monitor", "--once", "--wait", "1", "--port", str(broker.port)]) == 1
    assert "pole-test" in capsys.readouterr().out
