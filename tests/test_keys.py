# SPDX-License-Identifier: Apache-2.0
"""Key-file attacks from the adversarial review (issue 13 item 7), each run against the real agent:

* the node signing key the agent made under data_dir, left readable by others (0644): start refused,
  doctor FAILs;
* a trusted operations-room public key others can write (0666, or in a world-writable directory):
  swapping it would let an attacker's signature through, so it is refused;
* a node key deleted (or replaced) after the first start: refused with the identity it had, never
  silently regenerated; the first creation is logged."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, AgentProcess, free_port, wait_until, write_config

from edge_agent.agent import Agent, StartupError
from edge_agent.config import load
from edge_agent.core.keys import (
    KeyFileError,
    generate_keypair,
    key_fingerprint,
    load_or_create_node_key,
    load_private_key,
    load_public_key,
)
from edge_agent.field.doctor import CHECKS, check_keys, run_doctor
from edge_agent.field.provision import default_node_key_path, node_identity_path

ONLY_CONFIG_AND_KEYS = set(CHECKS) - {"config", "keys"}


def _run(cfg: Path) -> subprocess.CompletedProcess[str]:
    # Every case here is refused before the agent connects anywhere: no broker, and a short timeout.
    return subprocess.run([sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)], cwd=REPO,
                          capture_output=True, text=True, timeout=30)


def _doctor(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    rc = run_doctor(cfg, skip=ONLY_CONFIG_AND_KEYS)
    out = capsys.readouterr().out
    return rc, {ln.split()[1]: ln for ln in out.splitlines() if ln.split()[:1] in (["OK"], ["WARN"], ["FAIL"])
                and len(ln.split()) > 1 and not ln.startswith(("OK:", "FAIL:"))}


def _recorder_config(tmp_path: Path, text: str = "") -> Path:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", free_port(), recorder={"enabled": True})
    if text:
        cfg.write_text(cfg.read_text() + text)
    return cfg


def _with_trusted_key(tmp_path: Path, directory: Path | None = None) -> tuple[Path, Path]:
    d = directory or tmp_path / "ops"
    pub = d / "ops1.pub"
    generate_keypair(d / "ops1.key", pub)
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", free_port())
    cfg.write_text(cfg.read_text() + f'[security.trusted_keys]\nops1 = "{pub}"\n')
    return cfg, pub


# -- (a) the default node key ----------------------------------------------------------------------


def test_default_node_key_readable_by_others_stops_the_agent_and_fails_doctor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _recorder_config(tmp_path)
    c = load(cfg)
    key = default_node_key_path(c)
    generate_keypair(key, key.with_suffix(".pub"))  # as the first start makes it, then loosened
    key.chmod(0o644)

    proc = _run(cfg)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{key} is readable or writable by every user (mode 0644)" in proc.stderr
    assert f"chmod 600 {key}" in proc.stderr
    assert "Traceback" not in proc.stderr

    rc, lines = _doctor(cfg, capsys)
    assert rc == 1
    assert lines["keys"].startswith("FAIL") and str(key) in lines["keys"], lines
    assert f"-> fix: chmod 600 {key}" in lines["keys"]

    key.chmod(0o600)
    rc, lines = _doctor(cfg, capsys)
    assert rc == 0 and not lines["keys"].startswith("FAIL"), lines


# -- (b) trusted public keys -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646], ids=oct)
def test_trusted_key_writable_by_others_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    mode: int) -> None:
    cfg, pub = _with_trusted_key(tmp_path)
    loaded = load(cfg)  # fine while 0644: world-readable is what a public key is for
    pub.chmod(mode)
    fix = f"chmod go-w {pub}"

    # A config validated before the file changed (the agent's own start path after a remote overlay).
    with pytest.raises(StartupError) as err:
        Agent(loaded)
    assert str(pub) in str(err.value) and fix in str(err.value)

    proc = _run(cfg)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{pub} is writable by group or others (mode {mode:04o})" in proc.stderr and fix in proc.stderr

    chk = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(cfg)], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert chk.returncode == 2 and fix in chk.stderr

    rc, lines = _doctor(cfg, capsys)
    assert rc == 1 and lines["config"].startswith("FAIL") and fix in lines["config"], lines
    r = check_keys(loaded)
    assert r.status == "FAIL" and fix in r.fix


def test_trusted_key_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    _cfg, pub = _with_trusted_key(tmp_path, d)
    d.chmod(0o777)  # anyone may rename their own file over ops1.pub
    with pytest.raises(KeyFileError, match=f"chmod o-w {d}"):
        load_public_key(pub)
    d.chmod(0o1777)  # sticky, as /tmp: only the owner may replace the entry
    load_public_key(pub)
    d.chmod(0o755)
    load_public_key(pub)


# -- (c) the node's identity -----------------------------------------------------------------------


def test_lost_or_replaced_node_key_is_refused_not_regenerated(tmp_path: Path, agents: list[AgentProcess],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _recorder_config(tmp_path)
    c = load(cfg)
    key, ident = default_node_key_path(c), node_identity_path(c)
    first = AgentProcess(cfg, tmp_path / "first.log").start()
    agents.append(first)
    wait_until(key.exists, 30, "the first start to create the node key")
    wait_until(ident.exists, 5, "the first start to record the node identity")
    first.terminate()
    fp = key_fingerprint(load_private_key(key).public_key())
    rec = json.loads(ident.read_text())
    assert rec["fingerprint"] == fp and rec["key_file"] == str(key.absolute()) and rec["created"]
    assert f"created a new node signing key {key} (fingerprint sha256:{fp})" in first.output()
    assert "register its public key" in first.output()
    original = key.read_bytes()

    key.unlink()
    proc = _run(cfg)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "the node signing key is missing, but this node has an identity" in proc.stderr
    assert f"fingerprint sha256:{fp}" in proc.stderr and f"delete {ident}" in proc.stderr
    assert "Restore the key file from backup" in proc.stderr
    assert not key.exists(), "a lost key must not be replaced by a new identity"
    rc, lines = _doctor(cfg, capsys)
    assert rc == 1 and lines["keys"].startswith("FAIL") and "node identity" in lines["keys"], lines

    generate_keypair(key, key.with_suffix(".pub"))  # an attacker's (or a careless restore's) key
    other = key_fingerprint(load_private_key(key).public_key())
    proc = _run(cfg)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"(fingerprint sha256:{other}) is not the node's identity" in proc.stderr
    assert "the key was replaced" in proc.stderr and f"sha256:{fp}" in proc.stderr

    key.unlink()
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(original)  # restored from backup: the node is itself again
    assert key_fingerprint(load_or_create_node_key(key, ident).public_key()) == fp
    rc, lines = _doctor(cfg, capsys)
    assert not lines["keys"].startswith("FAIL"), lines


def test_first_creation_is_logged_and_an_existing_key_is_recorded(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    key, ident = tmp_path / "keys" / "node-signing.key", tmp_path / "node-identity.json"
    with caplog.at_level(logging.INFO, logger="edge_agent.core.keys"):
        made = load_or_create_node_key(key, ident)
    fp = key_fingerprint(made.public_key())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(key) in warnings[0] and fp in warnings[0], warnings
    assert "operations room" in warnings[0]
    assert json.loads(ident.read_text())["fingerprint"] == fp

    # A node upgraded from before the record existed: its key is adopted quietly, not called new.
    ident.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edge_agent.core.keys"):
        load_or_create_node_key(key, ident)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert json.loads(ident.read_text())["fingerprint"] == fp


def test_configured_node_key_is_never_generated(tmp_path: Path) -> None:
    key = tmp_path / "etc" / "node-signing.key"
    with pytest.raises(KeyFileError, match="edge-agent provision"):
        load_or_create_node_key(key, tmp_path / "node-identity.json", create=False)
    assert not key.exists() and not (tmp_path / "node-identity.json").exists()


def test_provisioning_after_a_generated_key_is_a_logged_change_of_identity(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ident = tmp_path / "node-identity.json"
    generated = load_or_create_node_key(tmp_path / "data" / "keys" / "node-signing.key", ident)
    provisioned = tmp_path / "etc" / "node-signing.key"
    generate_keypair(provisioned, provisioned.with_suffix(".pub"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge_agent.core.keys"):
        key = load_or_create_node_key(provisioned, ident, create=False)  # security.node_key_file now set
    fp = key_fingerprint(key.public_key())
    assert fp != key_fingerprint(generated.public_key())
    assert any(fp in r.getMessage() and "new node identity" in r.getMessage() for r in caplog.records)
    assert json.loads(ident.read_text()) | {"created": ""} == {"fingerprint": fp, "key_file": str(provisioned),
                                                               "created": ""}
    # ... and that identity is then held like the first one: with the provisioned key gone, neither the
    # configured path nor the default one (security.node_key_file taken out) gets a new key.
    provisioned.unlink()
    (tmp_path / "data" / "keys" / "node-signing.key").unlink()
    with pytest.raises(KeyFileError, match=f"node signing key is missing.*sha256:{fp}"):
        load_or_create_node_key(provisioned, ident, create=False)
    with pytest.raises(KeyFileError, match=f"node signing key is missing.*sha256:{fp}"):
        load_or_create_node_key(tmp_path / "data" / "keys" / "node-signing.key", ident)
    assert not (tmp_path / "data" / "keys" / "node-signing.key").exists()
