# SPDX-License-Identifier: Apache-2.0
"""The audit log's hash chain: intact logs verify, any edit, removal or torn write is found and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.audit import AuditLog, verify_file
from edge_agent.cli import main


def _log(path: Path, n: int) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.append({"action": "clip_request", "decision": "accepted" if i % 2 else "rejected", "request_id": f"r{i}"})
    log.close()


def test_intact_chain_verifies_and_survives_reopen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.log"
    _log(path, 3)
    _log(path, 2)  # reopening continues the chain
    assert verify_file(path).ok and verify_file(path).entries == 5
    assert main(["audit", "verify", "--file", str(path)]) == 0
    assert "5 entries, hash chain intact" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["edit", "remove", "swap"])
def test_broken_chain_is_named(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "audit.log"
    _log(path, 4)
    lines = path.read_text().splitlines()
    if damage == "edit":
        rec = json.loads(lines[1])
        rec["entry"]["decision"] = "accepted" if rec["entry"]["decision"] == "rejected" else "rejected"
        lines[1] = json.dumps(rec)
    elif damage == "remove":
        del lines[1]
    else:
        lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n")
    result = verify_file(path)
    assert not result.ok and result.problem.startswith("line 2")
    assert main(["audit", "verify", "--file", str(path)]) == 1
    assert "BROKEN" in capsys.readouterr().out


def test_torn_last_line_is_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _log(path, 2)
    with open(path, "ab") as f:
        f.write(b'{"seq": 3, "ts"')  # power cut mid-write
    _log(path, 1)
    assert verify_file(path).ok and verify_file(path).entries == 3


def test_audit_verify_uses_the_config_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n')
    assert main(["audit", "verify", "--config", str(cfg)]) == 1
    assert "no audit log" in capsys.readouterr().out
    _log(tmp_path / "audit.log", 1)
    assert main(["audit", "verify", "--config", str(cfg)]) == 0
