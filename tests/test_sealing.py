"""Upload tokens sealed to one node's Ed25519 key (``edge_agent.core.sealing``): only that node, for that
request, opens them; anything else is refused with a reason, never an exception."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nacl.bindings as nacl
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.cli import main
from edge_agent.commands.signing import SignedCommandVerifier, sign_command
from edge_agent.config import validate
from edge_agent.core import sealing
from edge_agent.core.keys import generate_keypair
from edge_agent.core.sealing import MAX_SEALED_CHARS, SealError, context_for, seal, unseal
from edge_agent.core.types import CommandRejected
from edge_agent.footage.clips.request import Limits, parse_clip_request

RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
TOKEN = "Bearer-s3cret-for-case-42"


def test_the_x25519_key_of_a_node_is_the_same_from_its_private_and_its_public_half() -> None:
    # The operations room maps the registered public key; the node its private key: they must meet.
    for _ in range(20):
        key = Ed25519PrivateKey.generate()
        from_private = sealing._x25519_private(key).public_key().public_bytes(*RAW)
        assert from_private == sealing._x25519_public(key.public_key()).public_bytes(*RAW)


def test_the_key_mapping_is_libsodiums() -> None:
    """Against an implementation nobody here wrote: libsodium (PyNaCl) maps both halves of an Ed25519 key to
    the same X25519 key as we do, so a sender using libsodium's conversion seals to the same key."""
    for _ in range(20):
        key = Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(*RAW)
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        ours = sealing._x25519_public(key.public_key()).public_bytes(*RAW)
        assert nacl.crypto_sign_ed25519_pk_to_curve25519(pub) == ours
        scalar = nacl.crypto_sign_ed25519_sk_to_curve25519(seed + pub)
        assert nacl.crypto_scalarmult_base(scalar) == sealing._x25519_private(key).public_key().public_bytes(*RAW)
        # The same shared secret with a third party's key, from libsodium's scalar and from ours.
        peer = Ed25519PrivateKey.generate()
        peer_x = sealing._x25519_private(peer)
        assert nacl.crypto_scalarmult(scalar, peer_x.public_key().public_bytes(*RAW)) == \
            sealing._x25519_private(key).exchange(peer_x.public_key())


def test_only_the_node_and_the_request_it_was_sealed_for_open_it() -> None:
    node, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ctx = context_for("pole-a", "case-1")
    sealed = seal(TOKEN, node.public_key(), ctx)
    assert TOKEN not in sealed and unseal(sealed, node, ctx) == TOKEN
    assert seal(TOKEN, node.public_key(), ctx) != sealed  # a fresh ephemeral key each time
    elsewhere = ((other, ctx), (node, context_for("pole-b", "case-1")), (node, context_for("pole-a", "case-2")))
    for key, context in elsewhere:
        with pytest.raises(SealError, match="does not open"):
            unseal(sealed, key, context)


def test_altered_truncated_oversized_or_garbled_sealed_tokens_are_refused() -> None:
    node = Ed25519PrivateKey.generate()
    ctx = context_for("pole-a", "case-1")
    raw = bytearray(base64.b64decode(seal(TOKEN, node.public_key(), ctx)))
    for i in (0, 31, 32, len(raw) - 1):  # the ephemeral key, the ciphertext, the tag
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        with pytest.raises(SealError):
            unseal(base64.b64encode(bytes(flipped)).decode(), node, ctx)
    cases = {
        base64.b64encode(bytes(raw[:40])).decode(): "too short",
        "not base64!": "not base64",
        "é" * 10: "not base64",
        "A" * (MAX_SEALED_CHARS + 4): "at most",
        base64.b64encode(bytes(32) + bytes(raw[32:])).decode(): "not a usable ephemeral key",  # a low-order point
    }
    for sealed, reason in cases.items():
        with pytest.raises(SealError, match=reason):
            unseal(sealed, node, ctx)
    with pytest.raises(SealError):
        unseal(123, node, ctx)  # type: ignore[arg-type]


def test_a_public_key_without_a_montgomery_image_is_refused() -> None:
    identity = Ed25519PublicKey.from_public_bytes((1).to_bytes(32, "little"))  # y = 1, the neutral point
    with pytest.raises(SealError, match="cannot receive"):
        seal(TOKEN, identity, b"x")


def _request(ops: Ed25519PrivateKey, **token: str) -> dict[str, object]:
    now = datetime.now(UTC)
    body = {"request_id": "case-1", "camera": "cam0", "start": (now - timedelta(seconds=20)).isoformat(),
            "end": (now - timedelta(seconds=10)).isoformat(), "agency": "City Police", "purpose": "Proc. 1/2026",
            "operator": "Isp. M. Rossi", "upload_url": "https://evidence.example/in", **token}
    return sign_command(body, ops, "ops1", node_id="pole-a", command="clip")


def test_the_node_takes_a_clear_token_only_where_configured_to(tmp_path: Path) -> None:
    node, ops = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = datetime.now(UTC).timestamp()
    signed = _request(ops, upload_token=TOKEN)

    def verifier(name: str) -> SignedCommandVerifier:
        return SignedCommandVerifier({"ops1": ops.public_key()}, tmp_path / f"{name}.sqlite3", node_id="pole-a")

    with pytest.raises(CommandRejected, match="upload_token in clear refused"):
        parse_clip_request(signed, verifier("a"), now, Limits("cam0", 60, now - 100, False), node)
    req = parse_clip_request(signed, verifier("b"), now, Limits("cam0", 60, now - 100, False, require_sealed=False),
                             node)
    assert req.upload_token == TOKEN
    sealed = _request(ops, upload_token_sealed=seal(TOKEN, node.public_key(), context_for("pole-a", "case-1")))
    assert parse_clip_request(sealed, verifier("c"), now, Limits("cam0", 60, now - 100, False), node).upload_token \
        == TOKEN
    # On by default in the config.
    assert validate({"node_id": "pole-a"}, "t").clips.require_sealed_token is True


def test_the_ops_tool_seals_or_refuses_to_send(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate_keypair(tmp_path / "ops.key", tmp_path / "ops.pub")
    token = tmp_path / "token"
    token.write_text(TOKEN)
    base = ["ops", "request-clip", "--node", "pole-a", "--key", str(tmp_path / "ops.key"), "--key-id", "ops1",
            "--agency", "City Police", "--purpose", "Proc. 1/2026", "--operator", "Isp. M. Rossi",
            "--upload-url", "https://evidence.example/in", "--token-file", str(token), "--last", "5",
            "--port", "1", "--timeout", "1"]
    assert main(base) == 2
    assert "give --node-key NODE.pub" in capsys.readouterr().err
    (tmp_path / "bad.pub").write_text("not a key")
    assert main([*base, "--node-key", str(tmp_path / "bad.pub")]) == 2
    assert "--node-key" in capsys.readouterr().err
    assert main([*base, "--node-key", str(tmp_path / "missing.pub")]) == 2


def test_doctor_warns_about_a_node_taking_tokens_in_clear() -> None:
    from edge_agent.field.doctor import pole_config_warnings

    def warned(**clips: bool) -> list[str]:
        cfg = validate({"node_id": "pole-a", "mqtt": {"host": "ops.example"}, "camera": {"source": "/dev/video0"},
                        "recorder": {"enabled": True}, "clips": clips}, "t")
        return [r.message for r in pole_config_warnings(cfg)]

    assert warned() == []
    assert any("require_sealed_token is false" in d for d in warned(require_sealed_token=False))
