# SPDX-License-Identifier: Apache-2.0
"""Signed commands: each way a command can be wrong is refused with its own reason; nonces survive restarts."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands import CommandRejected
from edge_agent.signing import (
    SignedCommandVerifier,
    generate_keypair,
    load_or_create_node_key,
    load_private_key,
    load_public_key,
    sign_command,
)

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def ops_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _verifier(tmp_path: Path, key: Ed25519PrivateKey) -> SignedCommandVerifier:
    return SignedCommandVerifier({"ops1": key.public_key()}, tmp_path / "nonces.sqlite3", max_age_s=3600)


def _reason(v: SignedCommandVerifier, body: dict[str, object]) -> str:
    with pytest.raises(CommandRejected) as exc:
        v.verify(body, NOW.timestamp())
    return str(exc.value)


def test_valid_command_returns_key_id(tmp_path: Path, ops_key: Ed25519PrivateKey) -> None:
    body = sign_command({"request_id": "r1", "x": [1, "ü"]}, ops_key, "ops1", now=NOW)
    assert _verifier(tmp_path, ops_key).verify(body, NOW.timestamp()) == "ops1"


def test_each_failure_has_its_own_reason(tmp_path: Path, ops_key: Ed25519PrivateKey) -> None:
    v = _verifier(tmp_path, ops_key)
    good = sign_command({"request_id": "r1"}, ops_key, "ops1", now=NOW)
    assert _reason(v, {k: x for k, x in good.items() if k != "signature"}) == "missing signature"
    assert _reason(v, {**good, "request_id": "r2"}).startswith("bad signature")
    assert _reason(v, {**good, "signature": "%%%"}).startswith("bad signature: not valid base64")
    stranger = sign_command({"request_id": "r1"}, Ed25519PrivateKey.generate(), "ops9", now=NOW)
    assert _reason(v, stranger).startswith("unknown key 'ops9'")
    assert _reason(v, {k: x for k, x in good.items() if k != "key_id"}).startswith("missing key_id")
    old = sign_command({"request_id": "r1"}, ops_key, "ops1", ttl_s=60, now=NOW - timedelta(hours=1))
    assert _reason(v, old).startswith("expired")
    far = sign_command({"request_id": "r1"}, ops_key, "ops1", ttl_s=86400, now=NOW)
    assert _reason(v, far).startswith("expiry too far in the future")
    short = sign_command({"request_id": "r1", "nonce": "abc"}, ops_key, "ops1", now=NOW)
    assert _reason(v, short).startswith("malformed request: nonce")
    naive = sign_command({"request_id": "r1", "expires": "2026-11-25T08:01:00"}, ops_key, "ops1", now=NOW)
    assert _reason(v, naive).startswith("malformed request: expires needs a timezone")


def test_replayed_nonce_is_refused_even_after_restart(tmp_path: Path, ops_key: Ed25519PrivateKey) -> None:
    body = sign_command({"request_id": "r1"}, ops_key, "ops1", now=NOW)
    v = _verifier(tmp_path, ops_key)
    v.verify(body, NOW.timestamp())
    assert _reason(v, body).startswith("replayed nonce")
    v.close()
    assert _reason(_verifier(tmp_path, ops_key), body).startswith("replayed nonce")


def test_key_files(tmp_path: Path) -> None:
    key = generate_keypair(tmp_path / "ops.key", tmp_path / "ops.pub")
    assert stat.S_IMODE((tmp_path / "ops.key").stat().st_mode) == 0o600
    assert load_private_key(tmp_path / "ops.key").public_key() == load_public_key(tmp_path / "ops.pub")
    assert load_public_key(tmp_path / "ops.pub") == key.public_key()
    with pytest.raises(FileExistsError):
        generate_keypair(tmp_path / "ops.key")
    node = load_or_create_node_key(tmp_path / "keys" / "node-signing.key")
    assert load_or_create_node_key(tmp_path / "keys" / "node-signing.key").public_key() == node.public_key()
    assert (tmp_path / "keys" / "node-signing.pub").is_file()


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ('[security.trusted_keys]\nops1 = "/nonexistent/ops1.pub"\n',
         "security.trusted_keys: ops1: /nonexistent/ops1.pub"),
        ('[security]\nnode_key_file = "/nonexistent/node.key"\n', "security.node_key_file: file not found"),
        ('[recorder]\ncodec = "h265"\n', "recorder.codec"),
        ('[upload]\nretry_min_s = 10\nretry_max_s = 1\n', "retry_max_s must be >= retry_min_s"),
    ],
)
def test_bad_security_and_recorder_config_is_named(tmp_path: Path, text: str, expect: str) -> None:
    from edge_agent.config import ConfigError, load

    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=expect.replace(".", r"\.")):
        load(f)


def test_a_private_key_is_not_a_trusted_key(tmp_path: Path) -> None:
    from edge_agent.config import ConfigError, load

    generate_keypair(tmp_path / "ops.key")
    f = tmp_path / "c.toml"
    f.write_text(f'[security.trusted_keys]\nops1 = "{tmp_path / "ops.key"}"\n')
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load(f)
