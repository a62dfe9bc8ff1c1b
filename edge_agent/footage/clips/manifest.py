# SPDX-License-Identifier: Apache-2.0
"""The clip manifest: what was cut, for whom and why, and its SHA-256, signed with the node's own Ed25519 key.

``verify_clip`` is what an agency (or ``edge-agent ops verify-clip``) runs: the clip's hash and size
must match and the signature must verify, against the node's public key when given (proof of
origin) or the key embedded in the manifest (integrity only).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_agent.commands.signing import iso_utc, sign_body, verify_signature
from edge_agent.core.keys import public_from_raw_b64, public_raw_b64
from edge_agent.core.types import CommandRejected

MANIFEST_VERSION = 1


class VerifyError(Exception):
    """The clip or manifest does not check out; the message says what."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def build_manifest(*, node_id: str, camera: str, request_id: str, agency: str, purpose: str, operator: str,
                   requested: tuple[str, str], clip_path: Path, clip_range: tuple[float, float], frames: int,
                   node_key: Ed25519PrivateKey) -> dict[str, Any]:
    from datetime import UTC, datetime

    def iso(ts: float) -> str:
        return iso_utc(datetime.fromtimestamp(ts, UTC))

    body = {
        "version": MANIFEST_VERSION,
        "node_id": node_id,
        "camera": camera,
        "request_id": request_id,
        "agency": agency,
        # Why the footage left the pole, signed with it: the clip cannot be reused for another case unnoticed.
        "purpose": purpose,
        "operator": operator,
        "requested": {"start": requested[0], "end": requested[1]},
        "clip": {"file": clip_path.name, "start": iso(clip_range[0]), "end": iso(clip_range[1]), "frames": frames,
                 "bytes": clip_path.stat().st_size, "sha256": sha256_file(clip_path)},
        "created": iso(time.time()),
        "public_key": public_raw_b64(node_key.public_key()),
    }
    return sign_body(body, node_key, node_id)


def verify_clip(clip_path: Path, manifest_path: Path, node_key: Ed25519PublicKey | None = None) -> dict[str, Any]:
    """Returns the manifest when clip and manifest check out; raises VerifyError naming the problem."""
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except FileNotFoundError:
        raise VerifyError(f"{manifest_path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise VerifyError(f"{manifest_path}: not a JSON manifest: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("clip"), dict):
        raise VerifyError(f"{manifest_path}: not a clip manifest")
    embedded = manifest.get("public_key")
    try:
        key = node_key or public_from_raw_b64(str(embedded))
    except ValueError:
        raise VerifyError("manifest: public_key is not a valid Ed25519 key") from None
    if node_key is not None and embedded != public_raw_b64(node_key):
        raise VerifyError("manifest: signed by a different key than the node key given")
    try:
        verify_signature(manifest, key)
    except CommandRejected as exc:
        raise VerifyError(f"manifest: {exc}") from None
    try:
        digest, size = sha256_file(clip_path), clip_path.stat().st_size
    except OSError as exc:
        raise VerifyError(f"{clip_path}: cannot read: {exc.strerror or exc}") from None
    if size != manifest["clip"].get("bytes"):
        raise VerifyError(f"clip: {size} bytes, the manifest says {manifest['clip'].get('bytes')}")
    if digest != manifest["clip"].get("sha256"):
        raise VerifyError("clip: SHA-256 does not match the manifest (the clip was altered)")
    return manifest
