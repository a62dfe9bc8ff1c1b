# SPDX-License-Identifier: Apache-2.0
"""Validation of ``cmd/clip`` requests: every refusal is a CommandRejected with its own reason."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands.signing import SignedCommandVerifier, parse_iso_utc
from edge_agent.core.sealing import SealError, context_for, unseal
from edge_agent.core.types import CommandRejected, Unverified

REQUIRED = ("request_id", "node_id", "command", "camera", "start", "end", "agency", "purpose", "operator",
            "upload_url", "expires", "nonce", "key_id", "signature")
# Exactly one of them: the token sealed to this node's key (edge_agent.core.sealing), or, where
# clips.require_sealed_token is off, in clear.
TOKEN_FIELDS = ("upload_token_sealed", "upload_token")
_AGENCY = re.compile(r"^[\w .,'()&/-]{1,128}$")
# Why footage leaves the pole and who asked: free text for people (a case or complaint number, a name and
# badge number or e-mail), so a little more punctuation than agency, but no control characters, and at least
# one letter or digit: a purpose of "  " or "-" records nothing. 128 is what the audit log keeps of a field.
_REASON_TEXT = re.compile(r"(?=.*[^\W_])[\w .,'()&/:#@+-]{1,128}")


@dataclass(frozen=True, slots=True)
class ClipRequest:
    request_id: str
    camera: str
    start_ts: float
    end_ts: float
    start: str
    end: str
    agency: str
    purpose: str  # the case or complaint reference the footage is for
    operator: str  # who in the agency asked
    upload_url: str
    upload_token: str
    key_id: str

    @property
    def upload_host(self) -> str:
        """Where the clip goes, without path or query (those may carry secrets): safe for logs and audit."""
        return urllib.parse.urlsplit(self.upload_url).netloc.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Limits:
    camera_id: str
    max_clip_s: float
    oldest_ts: float | None  # oldest footage still on disk, None when there is none
    allow_http: bool
    allowed_hosts: tuple[str, ...] = ()  # upload.allowed_hosts; empty: any host
    require_sealed: bool = True  # clips.require_sealed_token


def _split_url(value: str) -> urllib.parse.SplitResult:
    try:
        url = urllib.parse.urlsplit(value)
        if url.port == 0:  # .port itself raises ValueError for a port that is not a number in 0-65535
            raise ValueError("port 0")
    except ValueError:  # e.g. "https://[abc/x": an unbalanced IPv6 bracket
        raise CommandRejected("malformed request: upload_url is not a valid URL") from None
    return url


def _token(body: dict[str, Any], node_key: Ed25519PrivateKey, require_sealed: bool) -> str:
    given = [f for f in TOKEN_FIELDS if f in body]
    if len(given) != 1:
        raise CommandRejected("malformed request: give exactly one of upload_token_sealed and upload_token")
    value = body[given[0]]
    if not isinstance(value, str) or not value:
        raise CommandRejected(f"malformed request: {given[0]} must be a non-empty string")
    if given[0] == "upload_token":
        if require_sealed:
            raise CommandRejected("upload_token in clear refused (clips.require_sealed_token): send "
                                  "upload_token_sealed, sealed to this node's key ('edge-agent ops request-clip "
                                  "--node-key NODE.pub')")
        token = value
    else:
        try:
            token = unseal(value, node_key, context_for(str(body["node_id"]), str(body["request_id"])))
        except SealError as exc:
            raise CommandRejected(f"malformed request: upload_token_sealed {exc}") from None
    if not token or len(token) > 4096:
        raise CommandRejected("malformed request: upload token empty or longer than 4096 characters")
    return token


def parse_clip_request(body: dict[str, Any], verifier: SignedCommandVerifier, now: float,
                       limits: Limits, node_key: Ed25519PrivateKey) -> ClipRequest:
    """``node_key``: this node's signing key, which opens a sealed upload token."""
    unexpected = sorted(set(body) - set(REQUIRED) - set(TOKEN_FIELDS))
    if unexpected:
        raise Unverified(f"unexpected fields: {unexpected[:10]}")
    key_id = verifier.verify(body, now, command="clip")
    missing = [f for f in REQUIRED if f not in body]
    if missing:
        raise CommandRejected(f"malformed request: missing fields {missing}")
    for name in ("camera", "agency", "purpose", "operator", "upload_url"):
        if not isinstance(body[name], str) or not body[name]:
            raise CommandRejected(f"malformed request: {name} must be a non-empty string")
    if not _AGENCY.fullmatch(body["agency"]):
        raise CommandRejected("malformed request: agency must be 1-128 letters, digits, spaces or .,'()&/-")
    for name in ("purpose", "operator"):
        if not _REASON_TEXT.fullmatch(body[name]):
            raise CommandRejected(f"malformed request: {name} must be 1-128 letters, digits, spaces or "
                                  ".,'()&/:#@+- with at least one letter or digit")
    url = _split_url(body["upload_url"])
    if url.scheme != "https" and not (limits.allow_http and url.scheme == "http"):
        raise CommandRejected("malformed request: upload_url must be an https:// URL")
    if not url.hostname:
        raise CommandRejected("malformed request: upload_url has no host")
    if url.query or url.fragment or "?" in body["upload_url"] or "#" in body["upload_url"]:
        # A tus creation endpoint is a plain path: a fragment is never sent and a query would not carry over to
        # the upload URLs a relative Location names, so either is refused rather than guessed at.
        raise CommandRejected("malformed request: upload_url must have no query (?) or fragment (#)")
    if limits.allowed_hosts and url.hostname.lower() not in limits.allowed_hosts:
        raise CommandRejected(f"upload host {url.hostname[:64]!r} is not in upload.allowed_hosts")
    # Opened once the request is known to be signed and to name an acceptable host.
    token = _token(body, node_key, limits.require_sealed)
    start, end = parse_iso_utc(body["start"], "start"), parse_iso_utc(body["end"], "end")
    if body["camera"] != limits.camera_id:
        raise CommandRejected(f"unknown camera {body['camera'][:64]!r}: this node records {limits.camera_id!r}")
    if end <= start:
        raise CommandRejected("malformed request: end must be after start")
    if end - start > limits.max_clip_s:
        raise CommandRejected(f"range too long: {end - start:.0f} s, at most {limits.max_clip_s:.0f} s "
                              "(clips.max_clip_s)")
    if end > now:
        raise CommandRejected("range outside retention: end is in the future")
    if limits.oldest_ts is None:
        raise CommandRejected("range outside retention: no footage is recorded")
    if start < limits.oldest_ts:
        raise CommandRejected(f"range outside retention: start is {limits.oldest_ts - start:.0f} s before the "
                              "oldest footage")
    return ClipRequest(body["request_id"], body["camera"], start, end, body["start"], body["end"], body["agency"],
                       body["purpose"], body["operator"], body["upload_url"], token, key_id)
