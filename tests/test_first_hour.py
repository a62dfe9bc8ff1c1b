# SPDX-License-Identifier: Apache-2.0
"""Issue 16: a new user's first hour. check-config says OK only to configs run starts with, run refuses with one
clear message and exit 2, typos get a suggestion, and stopping says what is still queued."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, AgentProcess, free_port, wait_until, write_config

from edge_agent.core.keys import generate_keypair


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _bad_configs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(os.urandom(512))
    key = tmp_path / "node.key"
    generate_keypair(key)
    key.chmod(0o644)
    port = free_port()
    return {
        "corrupt model": (write_config(tmp_path / "m.toml", tmp_path / "d1", port,
                                       alpr={"enabled": True, "detector_model": str(junk)}),
                          "not a valid TFLite model"),
        "readable key": (write_config(tmp_path / "k.toml", tmp_path / "d2", port,
                                      security={"node_key_file": str(key)}), "chmod 600"),
        "missing video": (write_config(tmp_path / "v.toml", tmp_path / "d3", port,
                                       camera={"source": str(tmp_path / "street.mp4")}),
                          "street.mp4: no such file or folder"),
        "data dir": (write_config(tmp_path / "p.toml", Path("/proc/edge-agent-test"), port),
                     "data_dir /proc/edge-agent-test"),
    }


@pytest.mark.parametrize("case", ["corrupt model", "readable key", "missing video", "data dir"])
def test_check_config_refuses_what_run_refuses(tmp_path: Path, case: str) -> None:
    cfg, expect = _bad_configs(tmp_path)[case]
    chk = _cli("check-config", str(cfg))
    assert chk.returncode == 2 and expect in chk.stderr, chk
    assert "'run' would refuse this config" in chk.stderr
    run = _cli("run", "--config", str(cfg))
    assert run.returncode == 2, run
    assert expect in run.stderr and "Traceback" not in run.stderr
    assert run.stderr.count(expect) == 1, f"said more than once: {run.stderr}"
    assert "INFO: Created TensorFlow Lite" not in chk.stderr + run.stderr


def test_a_good_config_is_ok_and_check_config_changes_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "ok.toml", tmp_path / "not" / "yet" / "data", free_port())
    chk = _cli("check-config", str(cfg))
    assert chk.returncode == 0 and chk.stdout.startswith("OK node pole-test"), chk
    assert not (tmp_path / "not").exists(), "looking at the data folder must not create it"


def test_typos_get_a_suggestion(tmp_path: Path) -> None:
    r = _cli("run", "--confg", "x.toml")
    assert r.returncode == 2 and "usage: edge-agent run" in r.stderr and "did you mean --config?" in r.stderr
    cfg = tmp_path / "t.toml"
    cfg.write_text('[camera]\nsoruce = "demo"\n')
    r = _cli("check-config", str(cfg))
    assert r.returncode == 2 and "camera.soruce: unknown key (did you mean source?)" in r.stderr


def test_help_describes_every_command() -> None:
    for cmd in (["run"], ["check-config"], ["read"], ["ops", "request-clip"], ["ops", "hotlist"], ["ops", "config"],
                ["ops", "monitor"], ["audit", "verify"]):
        r = _cli(*cmd, "--help")
        assert r.returncode == 0, r
        body = r.stdout.split("\n\n", 2)
        assert len(body) >= 2 and len(body[1].strip()) > 20, f"{cmd}: no description"
    r = _cli("ops", "request-clip", "--help")
    for opt in ("--agency", "--camera", "--host", "--port", "--ttl", "--timeout"):
        line = r.stdout.split(opt, 1)[1].split("\n  -", 1)[0]
        assert len(line.strip()) > 10, f"{opt} has no help"


def test_stopping_says_what_is_still_queued(tmp_path: Path, agents: list[AgentProcess]) -> None:
    # No broker: the events stay in the outbox, and the agent says so when it stops.
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", free_port())
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: "edge-agent running" in agent.output(), 30, "the agent to start")
    wait_until(lambda: (tmp_path / "data" / "outbox.sqlite3").exists(), 10, "the outbox")
    import time

    time.sleep(3)  # a few demo cars: motion events
    assert agent.terminate() == 0
    out = agent.output()
    assert "events in the outbox, sent at the next start" in out, out[-2000:]
