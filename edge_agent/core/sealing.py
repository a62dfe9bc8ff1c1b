# SPDX-License-Identifier: Apache-2.0
"""Sealing a short secret (a clip request's upload token) to one node's Ed25519 key.

Only the node holding the private key can open it, so whoever reads ``cmd/#`` on the broker (the broker
itself, a mis-set ACL, a log of the traffic) learns nothing usable. No second key per node: the node's
Ed25519 signing key is mapped to X25519 (RFC 7748's birational map, as libsodium's
``crypto_sign_ed25519_pk_to_curve25519`` and age's ``ssh-ed25519`` recipients do), so the operations
room seals to the public key it already registered at provisioning.

The sealed form is ``base64(ephemeral X25519 public key || ChaCha20-Poly1305 ciphertext and tag)``; the
key is HKDF-SHA256 of the X25519 shared secret, salted with both public keys, and both the key and the
ciphertext are bound to a ``context`` (node id and request id) so a sealed token does not open for
another node or another request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_P = 2**255 - 19
_RAW = serialization.Encoding.Raw
# Each seal has its own ephemeral key, hence its own AEAD key: a fixed nonce is never reused under a key.
_NONCE = bytes(12)
_TAG = 16
# A sealed secret longer than this (base64 characters) is refused before decoding: upload tokens are short.
MAX_SEALED_CHARS = 8192


class SealError(Exception):
    """A sealed secret is malformed or does not open with this key and context."""


def context_for(node_id: str, request_id: str) -> bytes:
    """What a clip request's sealed token is bound to."""
    return f"edge-agent upload token v1\x00{node_id}\x00{request_id}".encode()


def seal(secret: str, recipient: Ed25519PublicKey, context: bytes) -> str:
    """``secret`` readable only with ``recipient``'s private key and the same ``context``."""
    peer = _x25519_public(recipient)
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    key = _derive(ephemeral.exchange(peer), eph_raw, _raw_public(peer), context)
    box = ChaCha20Poly1305(key).encrypt(_NONCE, secret.encode("utf-8"), context)
    return base64.b64encode(eph_raw + box).decode("ascii")


def unseal(sealed: str, key: Ed25519PrivateKey, context: bytes) -> str:
    """The secret inside ``sealed``; :class:`SealError` when it is malformed, sealed to another key or
    context, or altered. Size first, then decoding, then the AEAD check."""
    if not isinstance(sealed, str) or len(sealed) > MAX_SEALED_CHARS:
        raise SealError(f"not a string of at most {MAX_SEALED_CHARS} characters")
    try:
        raw = base64.b64decode(sealed.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):  # UnicodeEncodeError is a ValueError
        raise SealError("not base64") from None
    if len(raw) < 32 + _TAG:
        raise SealError("too short")
    mine = _x25519_private(key)
    try:
        shared = mine.exchange(X25519PublicKey.from_public_bytes(raw[:32]))
    except ValueError:  # a low-order point: the shared secret would be all zeros
        raise SealError("not a usable ephemeral key") from None
    aead_key = _derive(shared, raw[:32], _raw_public(mine.public_key()), context)
    try:
        plain = ChaCha20Poly1305(aead_key).decrypt(_NONCE, raw[32:], context)
    except InvalidTag:
        raise SealError("does not open with this node's key (sealed for another node or request, or altered)") \
            from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise SealError("not UTF-8 text") from None


def _derive(shared: bytes, eph_raw: bytes, recipient_raw: bytes, context: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=eph_raw + recipient_raw, info=context).derive(shared)


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(_RAW, serialization.PublicFormat.Raw)


def _x25519_public(key: Ed25519PublicKey) -> X25519PublicKey:
    """The Montgomery u = (1 + y) / (1 - y) of the Edwards point's y (RFC 7748, section 4.1)."""
    y = int.from_bytes(key.public_bytes(_RAW, serialization.PublicFormat.Raw), "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:  # not canonical, or the neutral point (no Montgomery image)
        raise SealError("the node's public key cannot receive sealed secrets")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return X25519PublicKey.from_public_bytes(u.to_bytes(32, "little"))


def _x25519_private(key: Ed25519PrivateKey) -> X25519PrivateKey:
    """The X25519 scalar of an Ed25519 key: the first half of SHA-512 of its seed (X25519 clamps it)."""
    seed = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])
