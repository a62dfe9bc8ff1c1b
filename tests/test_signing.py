# SPDX-License-Identifier: Apache-2.0
"""Signed commands: each way a command can be wrong is refused with its own reason; nonces survive restarts;
a command is bound to one node and one command, checked before its nonce is used up."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands.signing import SignedCommandVerifier, sign_command
from edge_agent.core.keys import generate_keypair, load_or_create_node_key, load_private_key, load_public_key
from edge_agent.core.types import Unverified

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
NODE = "pole-a"


def _sign(body: dict[str, object], key: Ed25519PrivateKey, key_id: str = "ops1", **kw: object) -> dict[str, object]:
    kw.setdefault("now", NOW)
    kw.setdefault("node_id", NODE)
    kw.setdefault("command", "clip")
    return sign_command(body, key, key_id, **kw)  # type: ignore[arg-type]


@pytest.fixture
def ops_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _verifier(tmp_path: Path, key: Ed25519PrivateKey) -> SignedCommandVerifier:
    return SignedCommandVerifier({"ops1": key.public_key()}, tmp_path / "nonces.sqlite3", max_age_s=3600,
                                 node_id=NODE)


def _reason(v: SignedCommandVerifier, body: dict[str, object], command: str = "clip", fleet: bool = False) -> str:
    with pytest.raises(Unverified) as exc:
        v.verify(body, NOW.timestamp(), command=command, fleet=fleet)
    return str(exc.value)


def test_valid_command_returns_key_id(tmp_path: Path, ops_key: Ed25519PrivateKey) -> None:
    body = _sign({"request_id": "r1", "x": [1, "ü"]}, ops_key)
    assert _verifier(tmp_path, ops_key).verify(body, NOW.timestamp(), command="clip") == "ops1"


def test_each_failure_has_its_own_reason(tmp_path: Path, ops_key: Ed25519PrivateKey) -> None:
    v = _verifier(tmp_path, ops_key)
    good = _sign({"request_id": "r1"}, ops_key)
    assert _reason(v, {k: x for k, x in good.items() if k != "signature"}) == "missing signature"
    assert _reason(v, {**good, "request_id": "r2"}).startswith("bad signature")
    assert _reason(v, {**good, "signature": "%%%"}).startswith("bad signature: not valid base64")
    stranger = _sign({"request_id": "r1"}, Ed25519PrivateKey.generate(), "ops9")
    assert _reason(v, stranger).startswith("unknown key 'ops9'")
    assert _reason(v, {k: x for k, x in good.items() if k != "key_id"}).startswith("missing key_id")
    old = _sign({"request_id": "r1"}, ops_key, ttl_s=60, now=NOW - timedelta(hours=1))
    assert _reason(v, old).startswith("expired")
    far = _sign({"request_id": "r1"}, ops_key, ttl_s=86400)
    assert _reason(v, far).startswith("expiry too far in the future")
    short = _sign({"request_id": "r1", "nonce": "abc"}, ops_key)
    assert _reason(v, short).startswith("malformed request: nonce")
    naive = _sign({"request_id": "r1", "expires": "2026-11-25T08:01:00"}, ops_key)
    assert _reason(v, naive).startswith("malformed request: expires needs a timezone")


def test_replayed_nonce_is_refused_even_after_restart(tmp_path: Path, ops_key: Ed25519PrivateKey) -> None:
    body = _sign({"request_id": "r1"}, ops_key)
    v = _verifier(tmp_path, ops_key)
    v.verify(body, NOW.timestamp(), command="clip")
    assert _reason(v, body).startswith("replayed nonce")
    v.close()
    assert _reason(_verifier(tmp_path, ops_key), body).startswith("replayed nonce")


def test_command_is_bound_to_one_node_and_one_command(tmp_path: Path, ops_key: Ed25519PrivateKey) -> None:
    v = _verifier(tmp_path, ops_key)
    unbound = sign_command({"request_id": "r1"}, ops_key, "ops1", now=NOW)
    assert _reason(v, unbound).startswith("malformed request: node_id and command must be in the signed body")
    other_pole = _sign({"request_id": "r1"}, ops_key, node_id="pole-b")
    assert _reason(v, other_pole).startswith("wrong node: signed for node 'pole-b'")
    fleet = _sign({"request_id": "r1"}, ops_key, node_id="*", command="hotlist")
    assert _reason(v, fleet, "hotlist").startswith("wrong node")  # "*" only where the command allows it
    hotlist = _sign({"request_id": "r1"}, ops_key, command="hotlist")
    assert _reason(v, hotlist, "config").startswith("wrong command: signed for cmd/hotlist, received on cmd/config")
    # None of these used up a nonce: the genuine deliveries still go through, once.
    assert v.verify(hotlist, NOW.timestamp(), command="hotlist") == "ops1"
    assert v.verify(fleet, NOW.timestamp(), command="hotlist", fleet=True) == "ops1"
    assert _reason(v, hotlist, "hotlist").startswith("replayed nonce")
    # Editing node_id or command after signing breaks the signature.
    assert _reason(v, {**other_pole, "node_id": NODE}).startswith("bad signature")


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
