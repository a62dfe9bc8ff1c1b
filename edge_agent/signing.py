# SPDX-License-Identifier: Apache-2.0
"""Ed25519-signed commands and documents: the one mechanism every signed thing on the node uses.

A signed body is a JSON object carrying ``key_id`` and ``signature``; the signature is Ed25519 over
the canonical JSON (sorted keys, no spaces, UTF-8) of the body *without* ``signature``. Commands also
carry ``expires`` (UTC ISO-8601) and a ``nonce`` that is accepted once: :class:`SignedCommandVerifier`
checks all of it and remembers nonces in SQLite until they expire, so a replay is refused even
after a restart.

Ops side::

    signed = sign_command({"request_id": "r1", "expires": ..., "nonce": ...}, private_key, "ops-2026")

Node side::

    verifier = SignedCommandVerifier(load_trusted_keys(cfg.security.trusted_keys), data_dir / "nonces.sqlite3")
    key_id = verifier.verify(body, time.time())   # raises CommandRejected(reason)
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.commands import CommandRejected

SIGNATURE_FIELD = "signature"
KEY_ID_FIELD = "key_id"
EXPIRES_FIELD = "expires"
NONCE_FIELD = "nonce"
MIN_NONCE_LEN = 16
MAX_NONCE_LEN = 128


class KeyFileError(Exception):
    """A key file is missing, unreadable or not an Ed25519 key; the message names the file."""


def canonical_json(obj: Any) -> bytes:
    """The exact bytes that are signed: a signer in any language can reproduce them."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _signed_bytes(body: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in body.items() if k != SIGNATURE_FIELD})


def sign_body(body: Mapping[str, Any], private_key: Ed25519PrivateKey, key_id: str) -> dict[str, Any]:
    """A copy of ``body`` with ``key_id`` and ``signature`` (base64) added."""
    out = {k: v for k, v in body.items() if k != SIGNATURE_FIELD}
    out[KEY_ID_FIELD] = key_id
    out[SIGNATURE_FIELD] = base64.b64encode(private_key.sign(_signed_bytes(out))).decode("ascii")
    return out


def sign_command(body: Mapping[str, Any], private_key: Ed25519PrivateKey, key_id: str,
                 ttl_s: float = 300.0, now: datetime | None = None) -> dict[str, Any]:
    """Signs a command, adding ``expires`` (now + ttl_s) and a fresh ``nonce`` unless already present."""
    out = dict(body)
    when = now or datetime.now(UTC)
    out.setdefault(EXPIRES_FIELD, iso_utc(when + timedelta(seconds=ttl_s)))
    out.setdefault(NONCE_FIELD, secrets.token_hex(16))
    return sign_body(out, private_key, key_id)


def verify_signature(body: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    """Checks ``signature`` over the body; raises CommandRejected("missing signature"/"bad signature")."""
    sig = body.get(SIGNATURE_FIELD)
    if sig is None:
        raise CommandRejected("missing signature")
    if not isinstance(sig, str):
        raise CommandRejected("bad signature: not a base64 string")
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise CommandRejected("bad signature: not valid base64") from None
    try:
        public_key.verify(raw, _signed_bytes(body))
    except (InvalidSignature, ValueError):
        raise CommandRejected("bad signature: does not match the body and key") from None


def iso_utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(value: Any, name: str) -> float:
    """An ISO-8601 timestamp with a timezone, as epoch seconds; CommandRejected naming the field otherwise."""
    if not isinstance(value, str):
        raise CommandRejected(f"malformed request: {name} must be an ISO-8601 string with timezone")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise CommandRejected(f"malformed request: {name} is not ISO-8601: {value[:40]!r}") from None
    if dt.tzinfo is None:
        raise CommandRejected(f"malformed request: {name} needs a timezone (e.g. 'Z')")
    return dt.timestamp()


class SignedCommandVerifier:
    """Verifies signed commands against the trusted keys and refuses replays.

    Each failure raises CommandRejected with a distinct reason prefix: ``missing signature``,
    ``missing key_id``, ``unknown key``, ``bad signature``, ``expired``, ``expiry too far``,
    ``malformed request``, ``replayed nonce``. A valid command's nonce is consumed by ``verify``.
    """

    def __init__(self, trusted_keys: Mapping[str, Ed25519PublicKey], nonce_db: Path,
                 max_age_s: float = 3600.0) -> None:
        self._keys = dict(trusted_keys)
        self._max_age = max_age_s
        self._lock = threading.Lock()
        nonce_db.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(nonce_db), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
                         " expires REAL NOT NULL)")

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def verify(self, body: Mapping[str, Any], now: float) -> str:
        """Returns the key id that signed ``body``; raises CommandRejected(reason) otherwise."""
        if not self._keys:
            raise CommandRejected("no trusted keys configured (security.trusted_keys): signed commands are refused")
        if SIGNATURE_FIELD not in body:
            raise CommandRejected("missing signature")
        key_id = body.get(KEY_ID_FIELD)
        if not isinstance(key_id, str) or not key_id:
            raise CommandRejected("missing key_id: a signed command names the key that signed it")
        key = self._keys.get(key_id)
        if key is None:
            raise CommandRejected(f"unknown key {key_id[:64]!r}: not in security.trusted_keys")
        verify_signature(body, key)
        expires = parse_iso_utc(body.get(EXPIRES_FIELD), EXPIRES_FIELD)
        if expires <= now:
            raise CommandRejected(f"expired {now - expires:.0f} s ago")
        if expires - now > self._max_age:
            raise CommandRejected(f"expiry too far in the future: more than {self._max_age:.0f} s ahead")
        nonce = body.get(NONCE_FIELD)
        if not isinstance(nonce, str) or not (MIN_NONCE_LEN <= len(nonce) <= MAX_NONCE_LEN):
            raise CommandRejected(f"malformed request: nonce must be a string of {MIN_NONCE_LEN}-{MAX_NONCE_LEN} "
                                  "characters")
        with self._lock:
            # Expired nonces can go: their commands are refused as expired before the nonce is looked at.
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
            try:
                self._db.execute("INSERT INTO nonces (nonce, key_id, expires) VALUES (?, ?, ?)",
                                 (nonce, key_id, expires))
            except sqlite3.IntegrityError:
                raise CommandRejected("replayed nonce: this command was already received") from None
        return key_id

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- key files -----------------------------------------------------------------------------------


def generate_keypair(private_path: Path, public_path: Path | None = None) -> Ed25519PrivateKey:
    """Writes a new private key (PEM, mode 0600, refusing to overwrite) and its public key."""
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # O_EXCL + mode at creation: the key is never readable by others, not even for an instant.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    if public_path is not None:
        public_path.write_bytes(public_pem(key.public_key()))
    return key


def public_path_for(private_path: Path) -> Path:
    """``x.key`` -> ``x.pub`` (as 'edge-agent provision' names them), anything else -> ``x.pub`` appended."""
    if private_path.suffix == ".key":
        return private_path.with_suffix(".pub")
    return private_path.with_name(private_path.name + ".pub")


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_raw_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_from_raw_b64(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read private key: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read public key: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return key


def load_trusted_keys(paths: Mapping[str, Path]) -> dict[str, Ed25519PublicKey]:
    return {key_id: load_public_key(p) for key_id, p in paths.items()}


def load_or_create_node_key(path: Path) -> Ed25519PrivateKey:
    """The node's own signing key, created (0600) on first start."""
    if not path.exists():
        return generate_keypair(path, public_path_for(path))
    return load_private_key(path)
