"""systemd notify without systemd-python: READY, STATUS and WATCHDOG datagrams reach $NOTIFY_SOCKET."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

from conftest import AgentProcess, free_port, write_config


def test_agent_sends_ready_status_and_watchdog(tmp_path: Path, agents: list[AgentProcess]) -> None:
    sock_path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(sock_path))
    srv.settimeout(0.5)
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", free_port())
    agent = AgentProcess(cfg, tmp_path / "agent.log",
                         env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}).start()
    agents.append(agent)
    got: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (any("WATCHDOG=1" in g for g in got) and
                                               any("STATUS=camera" in g for g in got)):
        with contextlib.suppress(TimeoutError):
            got.append(srv.recv(4096).decode())
    srv.close()
    assert any(g.startswith("READY=1") for g in got), got
    assert any("WATCHDOG=1" in g for g in got), got
    assert any("STATUS=camera" in g for g in got), got
    assert agent.terminate() == 0
