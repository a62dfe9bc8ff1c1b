"""`edge-agent provision`: key files, permissions, CSR, and the agent's refusal of readable keys."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, free_port, write_config
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edge_agent.cli import main


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_provision_writes_private_keys_0600_and_a_csr_for_the_node(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "etc"
    assert main(["provision", "--node-id", "pole-042", "--dir", str(d), "--owner", ""]) == 0
    out = capsys.readouterr().out
    assert _mode(d / "node-signing.key") == 0o600
    assert _mode(d / "node.key") == 0o600
    key = serialization.load_pem_private_key((d / "node-signing.key").read_bytes(), None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    tls_key = serialization.load_pem_private_key((d / "node.key").read_bytes(), None)
    assert isinstance(tls_key, ec.EllipticCurvePrivateKey)
    csr = x509.load_pem_x509_csr((d / "node.csr").read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "pole-042"
    assert csr.public_key().public_numbers() == tls_key.public_key().public_numbers()
    # What the technician sends: the public key, the CSR; never a private key.
    assert "ed25519:" in out and "BEGIN CERTIFICATE REQUEST" in out
    assert "PRIVATE KEY" not in out
    assert "node.crt" in out


def test_provision_refuses_to_replace_an_identity_without_force(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "etc"
    assert main(["provision", "--node-id", "pole-1", "--dir", str(d), "--owner", ""]) == 0
    before = (d / "node-signing.key").read_bytes()
    capsys.readouterr()
    assert main(["provision", "--node-id", "pole-1", "--dir", str(d), "--owner", ""]) == 2
    err = capsys.readouterr().err
    assert "already" in err and "--force" in err and "Traceback" not in err
    assert (d / "node-signing.key").read_bytes() == before
    assert main(["provision", "--node-id", "pole-1", "--dir", str(d), "--owner", "", "--force"]) == 0
    assert (d / "node-signing.key").read_bytes() != before
    assert _mode(d / "node-signing.key") == 0o600


@pytest.mark.parametrize("node_id", ["a/b", "", "x" * 65, "pole 1"])
def test_provision_rejects_bad_node_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str], node_id: str) -> None:
    assert main(["provision", "--node-id", node_id, "--dir", str(tmp_path), "--owner", ""]) == 2
    assert "node id" in capsys.readouterr().err
    assert not (tmp_path / "node.key").exists()


def test_agent_refuses_to_start_with_world_readable_key(tmp_path: Path) -> None:
    d = tmp_path / "etc"
    assert main(["provision", "--node-id", "pole-test", "--dir", str(d), "--owner", ""]) == 0
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o644)
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", free_port(),
                       mqtt={"username": "pole", "password_file": str(pw)})
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "run", "--config", str(cfg)], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "mqtt.password_file" in proc.stderr and "chmod 600" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists(), "nothing may be started before the check"
