# SPDX-License-Identifier: Apache-2.0
"""Ed25519-signed commands and documents: the one mechanism every signed thing on the node uses.

A signed body is a JSON object carrying ``key_id`` and ``signature``; the signature is Ed25519 over
the canonical JSON (sorted keys, no spaces, UTF-8) of the body *without* ``signature``. Commands also
carry ``expires`` (UTC ISO-8601) and a ``nonce`` that is accepted once: :class:`SignedCommandVerifier`
checks all of it and remembers nonces in SQLite until they expire, so a replay is refused even
after a restart.

Commands are bound to one node and one command: the signed body carries ``node_id`` and ``command``
(the topic's command name), so a command signed for pole A or for ``cmd/hotlist`` is refused by pole B
or on ``cmd/config``.

Ops side::

    signed = sign_command({"request_id": "r1"}, private_key, "ops-2026", node_id="pole-a", command="clip")

Node side::

    verifier = SignedCommandVerifier(load_trusted_keys(...), data_dir / "nonces.sqlite3", node_id="pole-a")
    key_id = verifier.verify(body, time.time(), command="clip")   # raises Unverified(reason)

The key files themselves (reading, creating, the node identity record, ``load_trusted_keys``) live in
:mod:`edge_agent.core.keys`, below the config layer that checks them.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sqlite3
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.core.types import CommandRejected, Unverified

SIGNATURE_FIELD = "signature"
KEY_ID_FIELD = "key_id"
EXPIRES_FIELD = "expires"
NONCE_FIELD = "nonce"
NODE_FIELD = "node_id"
COMMAND_FIELD = "command"
FLEET = "*"  # node_id of a command meant for every node (only where the command allows it: hotlist)
MIN_NONCE_LEN = 16
MAX_NONCE_LEN = 128


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
                 ttl_s: float = 300.0, now: datetime | None = None, *, node_id: str | None = None,
                 command: str | None = None) -> dict[str, Any]:
    """Signs a command, adding ``expires`` (now + ttl_s) and a fresh ``nonce`` unless already present, and
    ``node_id``/``command`` when given (a node refuses a command whose signed body lacks them)."""
    out = dict(body)
    if node_id is not None:
        out[NODE_FIELD] = node_id
    if command is not None:
        out[COMMAND_FIELD] = command
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
    """Verifies signed commands against the trusted keys, binds them to this node and one command, and
    refuses replays.

    Each failure raises :class:`Unverified` with a distinct reason prefix: ``missing signature``,
    ``missing key_id``, ``unknown key``, ``bad signature``, ``expired``, ``expiry too far``,
    ``malformed request``, ``wrong node``, ``wrong command``, ``replayed nonce``. Everything is checked
    before the nonce is consumed, so a command sent to the wrong node or topic cannot burn the nonce of
    the genuine one. A valid command's nonce is consumed by ``verify``.
    """

    def __init__(self, trusted_keys: Mapping[str, Ed25519PublicKey], nonce_db: Path,
                 max_age_s: float = 3600.0, *, node_id: str) -> None:
        self._keys = dict(trusted_keys)
        self._max_age = max_age_s
        self.node_id = node_id
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

    def verify(self, body: Mapping[str, Any], now: float, *, command: str, fleet: bool = False) -> str:
        """Returns the key id that signed ``body`` for this node and ``command``; raises Unverified otherwise.

        ``fleet``: the command may also be addressed to every node (``node_id`` ``"*"``)."""
        try:
            return self._verify(body, now, command, fleet)
        except Unverified:
            raise
        except CommandRejected as exc:  # from the shared helpers: same meaning, before the nonce
            raise Unverified(str(exc)) from None

    def _verify(self, body: Mapping[str, Any], now: float, command: str, fleet: bool) -> str:
        if not self._keys:
            raise Unverified("no trusted keys configured (security.trusted_keys): signed commands are refused")
        if SIGNATURE_FIELD not in body:
            raise Unverified("missing signature")
        key_id = body.get(KEY_ID_FIELD)
        if not isinstance(key_id, str) or not key_id:
            raise Unverified("missing key_id: a signed command names the key that signed it")
        key = self._keys.get(key_id)
        if key is None:
            raise Unverified(f"unknown key {key_id[:64]!r}: not in security.trusted_keys")
        verify_signature(body, key)
        expires = parse_iso_utc(body.get(EXPIRES_FIELD), EXPIRES_FIELD)
        if expires <= now:
            raise Unverified(f"expired {now - expires:.0f} s ago")
        if expires - now > self._max_age:
            raise Unverified(f"expiry too far in the future: more than {self._max_age:.0f} s ahead")
        node, name = body.get(NODE_FIELD), body.get(COMMAND_FIELD)
        if not isinstance(node, str) or not isinstance(name, str):
            raise Unverified("malformed request: node_id and command must be in the signed body (a signature "
                             "binds a command to one node and one command)")
        if node != self.node_id and not (fleet and node == FLEET):
            allowed = f"{self.node_id!r}" + (f" or {FLEET!r}" if fleet else "")
            raise Unverified(f"wrong node: signed for node {node[:64]!r}, this is {allowed}")
        if name != command:
            raise Unverified(f"wrong command: signed for cmd/{name[:64]}, received on cmd/{command}")
        nonce = body.get(NONCE_FIELD)
        if not isinstance(nonce, str) or not (MIN_NONCE_LEN <= len(nonce) <= MAX_NONCE_LEN):
            raise Unverified(f"malformed request: nonce must be a string of {MIN_NONCE_LEN}-{MAX_NONCE_LEN} "
                             "characters")
        with self._lock:
            # Expired nonces can go: their commands are refused as expired before the nonce is looked at.
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
            try:
                self._db.execute("INSERT INTO nonces (nonce, key_id, expires) VALUES (?, ?, ?)",
                                 (nonce, key_id, expires))
            except sqlite3.IntegrityError:
                raise Unverified("replayed nonce: this command was already received") from None
        return key_id

    def close(self) -> None:
        with self._lock:
            self._db.close()
