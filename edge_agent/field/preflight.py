# SPDX-License-Identifier: Apache-2.0
"""Every check ``edge-agent run`` makes before it starts, short of opening the camera and the broker, in one
place, so ``edge-agent check-config`` can make exactly the same ones (a config it calls OK starts).

The shape of the config (types, ranges, unknown keys, named files existing, trusted keys loading and not
replaceable) is checked by :mod:`edge_agent.config` when it loads; this adds what needs the machine:
the data folder, key-file modes, the node's identity, the camera path and the models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.config import Config


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)  # run refuses to start
    warnings: list[str] = field(default_factory=list)  # run starts, with less (e.g. no plate reading)


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def data_dir_problem(data_dir: Path, create: bool) -> str | None:
    """Why the data folder cannot be used, or None. ``create``: make it (run); else only look (check-config)."""
    d = Path(data_dir)
    if create:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return (f"data_dir {d}: cannot create it: {exc.strerror or exc}; create it for the service user "
                    f"(the systemd unit's StateDirectory does) or set data_dir to a writable folder")
    if d.exists():
        if not d.is_dir():
            return f"data_dir {d}: exists and is not a folder"
        if not os.access(d, os.W_OK | os.X_OK):
            return f"data_dir {d}: not writable by this user (uid {os.getuid()})"
        return None
    # Only trying tells (root passes every access() check, yet /proc refuses): create it, then remove
    # what was created, so looking leaves the machine as it was.
    parent = _nearest_existing(d)
    try:
        d.mkdir(parents=True)
    except OSError as exc:
        return (f"data_dir {d}: does not exist and cannot be created: {exc.strerror or exc} (nearest existing "
                f"folder: {parent})")
    made = d.absolute()
    while made != parent.absolute():
        made.rmdir()
        made = made.parent
    return None


def camera_problem(source: str) -> str | None:
    """A camera.source that names a local file or folder that is not there (a URL or device may come later)."""
    if source in ("demo", "picamera2") or "://" in source or source.startswith("/dev/") or source.isdigit():
        return None
    if not Path(source).exists():
        return f"camera.source: {source}: no such file or folder (a video file, a folder of images, a URL, " \
               "/dev/videoN, 'picamera2' or 'demo')"
    return None


def check(cfg: Config, *, create_data_dir: bool, load_models: bool) -> Preflight:
    from edge_agent.core.keys import node_identity_problem
    from edge_agent.field.provision import check_secret_files, node_identity_path, node_key_path

    out = Preflight()
    # A key others can read is a key others can copy: better not to run than to run as a cloneable node.
    out.problems += check_secret_files(cfg)
    lost = node_identity_problem(node_key_path(cfg), node_identity_path(cfg))
    if lost:
        out.problems.append(f"security: {lost}")
    cam = camera_problem(cfg.camera.source)
    if cam:
        out.problems.append(cam)
    # Last, and created only when nothing else stands in the way: a refused start leaves no trace.
    why = data_dir_problem(Path(cfg.data_dir), create_data_dir and not out.problems)
    if why:
        out.problems.append(why)
    if load_models and cfg.alpr.enabled:
        from edge_agent.pipeline.alpr.types import ModelError

        try:
            from edge_agent.pipeline.alpr import PlateReader

            PlateReader(detector_path=cfg.alpr.detector_model, ocr_path=cfg.alpr.ocr_model, threads=1)
        except (ModelError, ImportError) as exc:
            explicit = cfg.alpr.detector_model is not None or cfg.alpr.ocr_model is not None
            (out.problems if explicit else out.warnings).append(
                f"alpr: {exc}" + ("" if explicit else " (run starts with plate reading disabled)"))
    return out
