"""Disk full on the data dir (a real, small tmpfs): events wait in memory and are delivered after space returns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, AgentProcess, Broker, Collector, wait_until, write_config

sys.path.insert(0, str(REPO / "scripts"))
from fault_drill import fill_disk


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_loses_nothing(tmp_path: Path, small_fs: Path, broker: Broker, collector: Collector,
                                 agents: list[AgentProcess]) -> None:
    cfg = write_config(tmp_path / "a.toml", small_fs / "data", broker.port)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: len(collector.events()) >= 2, 30, "events before the disk fills")
    filler = fill_disk(small_fs)

    def held() -> int:
        h = collector.on("/health")
        return int(h[-1].json()["outbox"]["held_in_memory"]) if h else 0

    wait_until(lambda: held() >= 3, 40, "events held in memory while the disk is full")
    assert agent.proc is not None and agent.proc.poll() is None, "the agent keeps running"
    os.unlink(filler)
    time.sleep(1)
    wait_until(lambda: held() == 0, 30, "held events stored once space returns")
    n = max(e["seq"] for e in collector.events())
    wait_until(lambda: len({e["seq"] for e in collector.events()}) >= n, 20, "every seq delivered")
    seqs = sorted({e["seq"] for e in collector.events()})
    assert seqs == list(range(1, seqs[-1] + 1)), "no gap: nothing lost"
    assert collector.on("/health")[-1].json()["outbox"]["lost"] == 0
    assert "holding events in memory" in agent.output()
