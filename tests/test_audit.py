# SPDX-License-Identifier: Apache-2.0
"""The audit log's hash chain: intact logs verify, any edit, removal or torn write is found and named; signatures,
heads and rotation (issue 13.4/13.5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.cli import main
from edge_agent.footage.audit import GENESIS, AuditLog, head_path, line_hash, verify_file


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
    assert not result.ok and result.problem.startswith("audit.log line 2")
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
    assert main(["audit", "verify", "--config", str(cfg)]) == 0
    assert "no audit log yet" in capsys.readouterr().out
    _log(tmp_path / "audit.log", 1)
    assert main(["audit", "verify", "--config", str(cfg)]) == 0


# -- tamper evidence (issue 13.4): signatures, heads, truncation, deletion, rotation ---------------------------


def _signed_log(path: Path, n: int, key: Ed25519PrivateKey, max_bytes: int = 16 * 2**20) -> list[tuple[int, str]]:
    log = AuditLog(path, key, max_bytes)
    heads = []
    for i in range(n):
        rec = log.append({"action": "hotlist", "decision": "accepted", "request_id": f"h{i}"})
        heads.append((rec.seq, rec.hash))
    log.close()
    return heads


def test_history_rewritten_with_recomputed_hashes_fails_the_signature_check(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.log"
    _signed_log(path, 4, key)
    assert verify_file(path, key.public_key()).ok
    # The attack that passed before: drop request 2 and recompute every hash (no key needed for that).
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    del recs[1]
    prev = GENESIS
    for i, rec in enumerate(recs, start=1):
        rec["seq"], rec["prev"] = i, prev
        rec["hash"] = line_hash(i, rec["ts"], prev, rec["entry"])
        prev = rec["hash"]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    head_path(path).write_text(json.dumps({"seq": 3, "hash": prev}))
    assert verify_file(path).ok  # the chain alone cannot tell...
    result = verify_file(path, key.public_key())  # ...the node's signature can
    assert not result.ok and "not signed by the node key" in result.problem
    assert verify_file(path, Ed25519PrivateKey.generate().public_key()).ok is False


def test_head_from_the_operations_room_catches_truncation_and_emptying(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.log"
    heads = _signed_log(path, 5, key)
    seq, digest = heads[-1]
    assert main(["audit", "verify", "--file", str(path), "--head", f"{seq}:{digest}"]) == 0
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n")  # the last two lines removed
    head_path(path).unlink()  # and the node's own head with them
    assert verify_file(path).ok  # nothing inside the log shows it...
    assert main(["audit", "verify", "--file", str(path), "--head", f"{seq}:{digest}"]) == 1
    assert "entries removed from the end" in capsys.readouterr().out
    path.write_text("")  # emptied
    assert main(["audit", "verify", "--file", str(path), "--head", f"{seq}:{digest}"]) == 1
    other = "f" * 64
    _signed_log(tmp_path / "b" / "audit.log", 5, key)
    assert main(["audit", "verify", "--file", str(tmp_path / "b" / "audit.log"), "--head", f"3:{other}"]) == 1
    assert "history rewritten" in capsys.readouterr().out


def test_truncated_log_is_caught_by_the_nodes_own_head(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _signed_log(path, 4, Ed25519PrivateKey.generate())
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n")
    result = verify_file(path)
    assert not result.ok and "its head file says 4" in result.problem


def test_a_deleted_log_is_an_error_and_the_chain_continues_never_a_silent_restart(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.log"
    heads = _signed_log(path, 3, key)
    path.unlink()
    log = AuditLog(path, key)
    assert "missing entries 1-3" in log.problem
    rec = log.append({"action": "hotlist", "decision": "accepted", "request_id": "after"})
    log.close()
    # Seq 4 is the gap record, linked to the head the node remembered; then the new entry.
    first = json.loads(path.read_text().splitlines()[0])
    assert first["seq"] == 4 and first["prev"] == heads[-1][1] and first["entry"]["action"] == "audit_gap"
    assert rec.seq == 5
    result = verify_file(path, key.public_key())
    assert not result.ok and "entries 1-3 are missing" in result.problem


def test_rotation_carries_the_chain_and_request_ids_stay_used(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "audit.log"
    heads = _signed_log(path, 40, key, max_bytes=2000)
    rotated = sorted(tmp_path.glob("audit-*.log"))
    assert len(rotated) >= 3 and rotated[0].name == "audit-000000001.log"
    result = verify_file(path, key.public_key(), heads[5])
    assert result.ok and result.entries == 40 and result.last_seq == 40
    rotated[1].unlink()
    assert not verify_file(path, key.public_key()).ok
    log = AuditLog(path, key, 2000)
    assert log.was_accepted("hotlist", "h0") and log.was_accepted("hotlist", "h39")
    assert not log.was_accepted("hotlist", "h40")
    log.close()
