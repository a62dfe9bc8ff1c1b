"""Secrets kept out of logs and health: a camera source (``camera.source``) shown without its credentials."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")
# Many IP cameras take credentials as query parameters (``?user=admin&pwd=...``, ``loginpas=``, ``token=``).
# Parameters like ``channel=1&subtype=0`` stay readable: a technician needs them to tell streams apart.
_SECRET_PARAM = re.compile(r"([?&;](?:[^=&;#]*(?:pass|pwd|token|key|secret|auth|sig|cred|login|user)[^=&;#]*)=)"
                           r"[^&;#]*", re.IGNORECASE)


def redact(source: str) -> str:
    """The source without credentials (user:password, secret-looking query values), for logs and health."""
    shown = _USERINFO.sub(r"\1***@", source)
    if "://" in shown:
        shown = _SECRET_PARAM.sub(r"\1***", shown)
    return shown
