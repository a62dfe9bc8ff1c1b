# SPDX-License-Identifier: Apache-2.0
"""Ed25519 key files: creating, reading and checking them, and the node's identity record.

Used by the config layer (a trusted key must be a readable Ed25519 public key nobody else can replace),
by the signing of commands and documents (edge_agent.commands.signing), and by the field and ops tools.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.core.atomic_file import replace_file


class KeyFileError(Exception):
    """A key file is missing, unreadable or not an Ed25519 key; the message names the file."""


def generate_keypair(private_path: Path, public_path: Path | None = None) -> Ed25519PrivateKey:
    """Writes a new private key (PEM, mode 0600, refusing to overwrite) and its public key (0644)."""
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
        # Explicit, not the umask's: a group-writable public key is refused when loaded as a trusted key.
        public_path.chmod(0o644)
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


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """sha256 of the raw public key, hex: what 'edge-agent provision' prints as ``sha256:...``."""
    import hashlib

    return hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()


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


def replaceable_problem(path: Path, mode: int | None = None) -> str | None:
    """Why another user could replace this public key file (so whoever does signs as its owner), or None.

    A public key may be read by anyone, but a trusted key that others can write, or that sits in a
    directory others can write without the sticky bit (they can rename a new file over it), lets them
    swap in their own key and sign commands as the operations room."""
    import stat

    if mode is None:
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            return f"{path}: cannot stat: {exc.strerror or exc}"
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f"{path} is writable by group or others (mode {stat.S_IMODE(mode):04o}): whoever replaces it "
                f"can sign commands; fix: chmod go-w {path}")
    # The directory of the name as written and every directory above the real file.
    dirs = [path.absolute().parent, *Path(os.path.realpath(path)).parents]
    for d in dict.fromkeys(dirs):
        try:
            dmode = d.stat().st_mode
        except OSError:
            continue  # a directory we cannot stat is not one we can judge; the file itself was fine
        if dmode & stat.S_IWOTH and not dmode & stat.S_ISVTX:
            return (f"{path}: its directory {d} is writable by every user (mode {stat.S_IMODE(dmode):04o}), so "
                    f"anyone can replace the file and sign commands; fix: chmod o-w {d} (or move the key)")
    return None


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        # Check the mode of the file actually read (fstat), not of whatever the name points to a moment later.
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read public key: {exc.strerror or exc}") from None
    why = replaceable_problem(path, mode)
    if why is not None:
        raise KeyFileError(why)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise KeyFileError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return key


def load_trusted_keys(paths: Mapping[str, Path]) -> dict[str, Ed25519PublicKey]:
    return {key_id: load_public_key(p) for key_id, p in paths.items()}


# The node's identity: the fingerprint of its signing key, recorded the first time the key is used. The
# operations room registered that key; a node that quietly made a new one would sign clips nobody can
# verify as coming from it, and a replaced key would let whoever replaced it sign as the node.

def _read_identity(identity_file: Path) -> dict[str, Any] | None:
    try:
        text = identity_file.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyFileError(f"{identity_file}: cannot read the node identity record: {exc.strerror or exc}") from None
    try:
        rec = json.loads(text)
        ok = isinstance(rec, dict) and isinstance(rec.get("fingerprint"), str) and len(rec["fingerprint"]) == 64
    except ValueError:
        ok = False
    if not ok:
        raise KeyFileError(f"{identity_file}: not a node identity record; restore it from backup, or delete it "
                           "to accept the current node signing key as this node's identity")
    return dict(rec)


def _write_identity(identity_file: Path, fingerprint: str, key_file: Path) -> None:
    rec = {"fingerprint": fingerprint, "key_file": str(key_file.absolute()),
           "created": datetime.now(UTC).isoformat(timespec="seconds")}
    identity_file.parent.mkdir(parents=True, exist_ok=True)
    replace_file(identity_file, (json.dumps(rec, indent=1) + "\n").encode(), 0o644)


def _recorded(rec: Mapping[str, Any], identity_file: Path) -> str:
    return (f"fingerprint sha256:{rec['fingerprint']}, key {rec.get('key_file', '?')}, recorded in {identity_file} "
            f"on {rec.get('created', '?')}")


def _lost(path: Path, rec: Mapping[str, Any], identity_file: Path) -> str:
    return (f"{path}: the node signing key is missing, but this node has an identity "
            f"({_recorded(rec, identity_file)}); refusing to start with a new key, which would be a new identity "
            "the operations room does not know. Restore the key file from backup; or, if the identity must "
            f"change, delete {identity_file}, create a new key ('edge-agent provision', or start the agent without "
            "security.node_key_file to have it make one) and register the new public key with the operations room")


def _swapped(path: Path, fingerprint: str, rec: Mapping[str, Any], identity_file: Path) -> str:
    return (f"{path}: this node signing key (fingerprint sha256:{fingerprint}) is not the node's identity "
            f"({_recorded(rec, identity_file)}): the key was replaced; refusing to sign as another node. "
            f"Restore the original key from backup; or, if the identity must change, delete {identity_file} "
            f"and register the new public key ({public_path_for(path)}) with the operations room")


def node_identity_problem(path: Path, identity_file: Path) -> str | None:
    """What :func:`load_or_create_node_key` would refuse about this key and record, without creating or
    recording anything (for 'edge-agent doctor'); None when it would start."""
    try:
        rec = _read_identity(identity_file)
        if rec is None:
            return None
        if not path.exists():
            return _lost(path, rec, identity_file)
        fp = key_fingerprint(load_private_key(path).public_key())
    except KeyFileError as exc:
        return str(exc)
    if fp != rec["fingerprint"] and _same_file(rec, path):
        return _swapped(path, fp, rec, identity_file)
    return None


def _same_file(rec: Mapping[str, Any], path: Path) -> bool:
    return str(rec.get("key_file")) == str(path.absolute())


def load_or_create_node_key(path: Path, identity_file: Path | None = None, *, create: bool = True) -> Ed25519PrivateKey:
    """The node's own signing key, created (0600) on first start when ``create``.

    With ``identity_file`` the key's fingerprint is recorded there the first time, and later a missing key
    or a different key at the same path is refused (KeyFileError) rather than replaced by a new identity.
    A different key at a different path is a deliberate config change ('edge-agent provision', then
    ``security.node_key_file``): accepted, recorded, and logged as a new identity."""
    import logging

    log = logging.getLogger(__name__)
    rec = _read_identity(identity_file) if identity_file is not None else None
    if not path.exists():
        if rec is not None and identity_file is not None:
            raise KeyFileError(_lost(path, rec, identity_file))
        if not create:
            # A configured key is the provisioned identity: a stand-in made here would be a different node.
            raise KeyFileError(f"{path}: node signing key not found (security.node_key_file); it is never created "
                               "in place of a configured key: restore it from backup, or create one with "
                               "'edge-agent provision'")
        key = generate_keypair(path, public_path_for(path))
        fp = key_fingerprint(key.public_key())
        log.warning("created a new node signing key %s (fingerprint sha256:%s): this is a new node identity; "
                    "register its public key %s with the operations room", path, fp, public_path_for(path))
        if identity_file is not None:
            _write_identity(identity_file, fp, path)
        return key
    key = load_private_key(path)
    if identity_file is None:
        return key
    fp = key_fingerprint(key.public_key())
    if rec is None:
        _write_identity(identity_file, fp, path)
        log.info("node signing key %s, fingerprint sha256:%s: recorded as this node's identity in %s",
                 path, fp, identity_file)
    elif fp != rec["fingerprint"]:
        if _same_file(rec, path):
            raise KeyFileError(_swapped(path, fp, rec, identity_file))
        log.warning("node signing key is now %s (fingerprint sha256:%s), was %s (sha256:%s): this is a new node "
                    "identity; register its public key %s with the operations room", path, fp,
                    rec.get("key_file", "?"), rec["fingerprint"], public_path_for(path))
        _write_identity(identity_file, fp, path)
    return key
