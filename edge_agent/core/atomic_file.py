# SPDX-License-Identifier: Apache-2.0
"""Replacing a small file so that a crash or power loss leaves the old or the new file, never half of one:
write a temporary file created with its final mode, fsync it, rename it over the old one, fsync the folder
(the rename is durable only once the folder's entry is on disk)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an older temporary file keeps its mode through O_CREAT: set it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
