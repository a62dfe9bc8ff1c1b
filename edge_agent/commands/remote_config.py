"""Remote configuration: a signed ``cmd/config`` changes a whitelist of runtime keys, safely.

The technician's file (``/etc/edge-agent/edge-agent.toml``) is never written: it is read-only to the
service, and it is the known-good base. Remote changes live in an *overlay*,
``{data_dir}/remote-config.json``, merged over the file at every start and validated exactly like it.

Applying a change:

1. the command's signature, expiry and nonce are checked (:mod:`edge_agent.commands.signing`), the keys
   against :data:`RUNTIME_KEYS`, and the merged config with :func:`edge_agent.config.validate`;
2. a *pending* marker holding the previous overlay is written, then the new overlay (each file:
   temp + fsync + rename + fsync of the directory, so power loss leaves the old or the new file);
3. the node answers ``ok`` with ``state: "pending self-check"`` and restarts itself in place
   (``exec``: same PID, so systemd sees no exit) to apply the change to every stage at once;
4. the new process runs the self-check for ``remote_config.self_check_s``; if it passes, the marker
   is deleted and a second reply with ``state: "committed"`` is sent; if it fails, or the process
   dies before deciding (a second start still finds the marker), the previous overlay is restored,
   the node restarts on it and replies ``state: "rolled back"`` with the reason.

docs/mqtt.md documents the command; the ``config`` and ``self_check`` health fields show the state.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from edge_agent.commands.router import DecisionSink
from edge_agent.config import Config, ConfigError, validate
from edge_agent.core.atomic_file import fsync_dir, replace_file
from edge_agent.core.types import Command, CommandRejected, Unverified

log = logging.getLogger(__name__)

# The keys a signed cmd/config may change: tuning that does not change the node's identity, where it
# sends data or what it trusts (those need a technician and the file).
RUNTIME_KEYS: tuple[str, ...] = (
    "motion.enabled",
    "motion.masks",
    "motion.threshold",
    "motion.min_area",
    "motion.blur",
    "motion.alpha",
    "motion.end_after_s",
    "motion.scan_interval_s",
    "alpr.min_confidence",
    "formats.enabled",
    "health.interval_s",
    "upload.max_kbps",
    "log.level",
)

# What a remote change may set, tighter than what the file may: a signed command must not be able to
# silence the node while its self-check still passes (min_confidence 1.0 reads nothing; a mask over
# the whole frame sees nothing).
REMOTE_BOUNDS: dict[str, tuple[float, float]] = {
    "alpr.min_confidence": (0.05, 0.95),
    "motion.threshold": (2, 120),
    "motion.min_area": (0.0001, 0.2),
    "motion.end_after_s": (0.0, 60.0),
    "motion.scan_interval_s": (0.0, 60.0),
    "health.interval_s": (1.0, 3600.0),
    "upload.max_kbps": (64.0, 1_000_000.0),
}
MAX_REMOTE_MASK_AREA = 0.8  # share of the frame remote motion masks may cover together
_ALLOWED_FIELDS = {"request_id", "node_id", "command", "set", "reset", "dry_run", "key_id", "nonce", "expires",
                   "signature"}

OVERLAY = "remote-config.json"
PENDING = "remote-config.pending.json"
RESULT = "remote-config.result.json"
REVISION = "remote-config.revision.json"  # the highest revision ever issued: never reused after a rollback


class ApplyError(Exception):
    """The overlay on disk cannot be used; the node runs on the file's values."""


# -- files -----------------------------------------------------------------------------------------


def write_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Replaces ``path`` with ``data`` as JSON so that a crash or power loss leaves the old or new file."""
    replace_file(path, json.dumps(data, indent=1, sort_keys=True).encode(), 0o600)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ApplyError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ApplyError(f"{path}: not a JSON object")
    return data


def merge(base: Config, values: Mapping[str, Any], origin: str) -> Config:
    """The base config with dotted ``values`` set, validated like the file; ConfigError names the key."""
    raw = base.model_dump()
    for dotted, value in values.items():
        if dotted not in RUNTIME_KEYS:
            raise ConfigError(f"{origin}: {dotted}: not a remotely changeable key; allowed: {', '.join(RUNTIME_KEYS)}")
        section, _, key = dotted.partition(".")
        raw.setdefault(section, {})[key] = copy.deepcopy(value)
    return validate(raw, origin)


# -- start-up: overlay, crash detection, rollback ------------------------------------------------------


class State:
    """What the running process knows about remote configuration; shared by the agent and cli."""

    def __init__(self, base: Config, data_dir: Path, self_check_s: float) -> None:
        self.base = base
        self.dir = data_dir
        self.self_check_s = self_check_s
        self.revision = 0
        self.values: dict[str, Any] = {}
        self.state = "file"  # file | committed | pending self-check | rolled back: <why>
        self.pending: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None  # a reply owed to the operations room

    def health(self) -> dict[str, Any]:
        return {"revision": self.revision, "state": self.state, "keys": sorted(self.values)}


def prepare(base: Config, self_check_s: float | None = None) -> tuple[Config, State]:
    """The config to run with: the base file plus the remote overlay, unless the overlay must be rolled back.

    Never raises for a bad overlay: the node must come up on its file rather than not at all.
    """
    data = Path(base.data_dir)
    rc = getattr(base, "remote_config", None)
    st = State(base, data, self_check_s if self_check_s is not None else
               (rc.self_check_s if rc is not None else 30.0))
    try:
        st.result = _read(data / RESULT)
        pending = _read(data / PENDING)
        overlay = _read(data / OVERLAY)
    except (ApplyError, OSError) as exc:
        log.error("remote config: %s; running on the config file only", exc)
        return base, st
    if st.result is not None and st.result.get("state") == "rolled back":
        st.state = str(st.result.get("error", "rolled back"))  # shown in health until the next change
    if pending is not None:
        if overlay is None or overlay.get("revision") != pending.get("revision"):
            # Crashed between the marker and the overlay: the change never landed.
            _remove(data / PENDING)
            pending = None
        else:
            pending["attempts"] = int(pending.get("attempts", 0)) + 1
            if pending["attempts"] > 1:
                # The previous start with this overlay never passed (or failed) its self-check: a crash.
                overlay = rollback(st, pending, "the agent did not survive its self-check (crashed or killed)")
                pending = None
            else:
                write_atomic(data / PENDING, pending)
    if overlay is None:
        return base, st
    values = overlay.get("values", {})
    try:
        cfg = merge(base, values, str(data / OVERLAY))
    except ConfigError as exc:
        if pending is not None:
            rollback(st, pending, f"invalid after restart: {exc}")
            cfg, again = prepare(base, st.self_check_s)  # the marker is gone: this cannot recurse again
            again.state = st.state
            return cfg, again
        log.error("remote config: %s; running on the config file only (the file changed under the overlay?)", exc)
        st.state = f"ignored: {exc}"
        return base, st
    st.revision, st.values = int(overlay.get("revision", 0)), dict(values)
    if pending is not None:
        st.pending = pending
        st.state = "pending self-check"
        log.info("remote config: revision %d applied; self-check for %.0f s", st.revision, st.self_check_s)
    elif not st.state.startswith("rolled back"):
        st.state = "committed"
    return cfg, st


def rollback(st: State, pending: Mapping[str, Any], reason: str) -> dict[str, Any] | None:
    """Restores the overlay from before the pending change; returns it (None: back to the file only)."""
    previous = pending.get("previous")
    data = st.dir
    if previous is None:
        _remove(data / OVERLAY)
    else:
        write_atomic(data / OVERLAY, previous)
    result = {"request_id": pending.get("request_id"), "command": "config", "ok": False,
              "state": "rolled back", "revision": pending.get("revision"),
              "restored_revision": previous.get("revision", 0) if previous else 0,
              "error": f"rolled back: {reason}"}
    write_atomic(data / RESULT, result)
    _remove(data / PENDING)
    st.result = result
    st.state = f"rolled back: {reason}"
    log.error("remote config: revision %s rolled back: %s", pending.get("revision"), reason)
    return previous


# -- the running agent's side --------------------------------------------------------------------------


class Verifier(Protocol):
    def verify(self, body: Mapping[str, Any], now: float, *, command: str, fleet: bool = False) -> str: ...


class AgentView(Protocol):
    """What the self-check looks at (edge_agent.agent.Agent provides it)."""

    def healthy(self) -> bool: ...


Replier = Callable[[str, dict[str, Any]], None]


def highest_revision(data_dir: Path) -> int:
    try:
        return int((_read(data_dir / REVISION) or {}).get("revision", 0))
    except (ApplyError, ValueError, TypeError):
        return 0


def _polygon_area(poly: list[Any]) -> float:
    pts = [(float(x), float(y)) for x, y in poly]
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True))) / 2


def remote_bound_problems(cfg: Config, changed: Mapping[str, Any]) -> list[str]:
    """Why values a remote change sets are outside :data:`REMOTE_BOUNDS` (empty when they are inside)."""
    problems = []
    for dotted in changed:
        section, _, key = dotted.partition(".")
        value = getattr(getattr(cfg, section), key)
        bounds = REMOTE_BOUNDS.get(dotted)
        if bounds is not None and not (bounds[0] <= float(value) <= bounds[1]):
            problems.append(f"{dotted} = {value} (remotely {bounds[0]:g}..{bounds[1]:g}; the config file may "
                            "set more)")
    if "motion.masks" in changed:
        area = sum(_polygon_area(p) for p in cfg.motion.masks)
        if area > MAX_REMOTE_MASK_AREA:
            problems.append(f"motion.masks cover {area:.0%} of the frame (remotely at most "
                            f"{MAX_REMOTE_MASK_AREA:.0%})")
    return problems


def self_check_problems(agent: Any) -> list[str]:
    """Why the running agent is not doing its job (empty when it is); used for health and rollback."""
    problems = []
    s = agent.stats
    if not agent.healthy():
        dead = list(getattr(s, "dead_threads", []))
        problems.append(f"thread(s) died: {', '.join(dead)}" if dead else "processing loop stalled")
    if s.camera_state == "down":
        problems.append(f"camera down: {s.camera_error}")
    elif s.camera_state == "ok" and s.frames_processed == 0:
        problems.append("no frame processed")
    return problems


class RemoteConfig:
    """The ``config`` command handler and the post-restart self-check."""

    def __init__(self, state: State, verifier: Verifier | None, request_restart: Callable[[], None],
                 audit: DecisionSink | None = None) -> None:
        self.st = state
        self._verifier = verifier
        self._audit = audit
        self._request_restart = request_restart
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._result_sent = False
        self._restarting = False  # a change was persisted; this process is about to be replaced

    def health(self) -> dict[str, Any]:
        return self.st.health()

    def self_check(self, agent: Any) -> list[str]:
        """The self-check for the health message: no frames yet is normal in the first seconds after start."""
        problems = self_check_problems(agent)
        if time.monotonic() - self._started < 10.0:
            problems = [p for p in problems if p != "no frame processed"]
        return problems

    def handle(self, cmd: Command) -> dict[str, Any]:
        if self._verifier is None:
            raise Unverified("no trusted keys configured (security.trusted_keys): signed commands are refused")
        unexpected = set(cmd.body) - _ALLOWED_FIELDS
        if unexpected:
            raise Unverified(f"unexpected field(s): {sorted(unexpected)[:5]}")
        key_id = self._verifier.verify(cmd.body, time.time(), command="config")
        set_ = cmd.body.get("set", {})
        reset = cmd.body.get("reset", [])
        if not isinstance(set_, dict) or not isinstance(reset, list) or not all(isinstance(k, str) for k in reset):
            raise CommandRejected("malformed request: 'set' must be an object of dotted keys, 'reset' a list of keys")
        if not set_ and not reset:
            raise CommandRejected("malformed request: nothing to change (give 'set' and/or 'reset')")
        bad = [k for k in [*set_, *reset] if k not in RUNTIME_KEYS]
        if bad:
            raise CommandRejected(f"not remotely changeable: {', '.join(bad)}; allowed: {', '.join(RUNTIME_KEYS)}")
        with self._lock:
            if self.st.pending is not None or self._restarting:
                raise CommandRejected(f"revision {self.st.revision} is still in its self-check; retry after "
                                      f"{self.st.self_check_s:.0f} s")
            values = {k: v for k, v in self.st.values.items() if k not in reset}
            values.update(set_)
            try:
                merged = merge(self.st.base, values, "cmd/config")
            except ConfigError as exc:
                raise CommandRejected(str(exc)) from None
            out_of_bounds = remote_bound_problems(merged, set_)
            if out_of_bounds:
                raise CommandRejected("outside what a remote change may set: " + "; ".join(out_of_bounds))
            if cmd.body.get("dry_run") is True:
                return {"state": "valid (dry run: nothing applied)", "revision": self.st.revision}
            revision = max(self.st.revision, highest_revision(self.st.dir)) + 1
            previous = {"revision": self.st.revision, "values": self.st.values} if self.st.values else None
            d = self.st.dir
            if self._audit is not None and self._audit.decision(
                    "config", "accepted", cmd.request_id, cmd.body, revision=revision,
                    set=sorted(set_), reset=sorted(reset)) is None:
                raise CommandRejected("audit log unavailable: the change cannot be recorded, so it is refused")
            try:
                write_atomic(d / REVISION, {"revision": revision})
                write_atomic(d / PENDING, {"request_id": cmd.request_id, "revision": revision, "attempts": 0,
                                           "previous": previous, "key_id": key_id})
                write_atomic(d / OVERLAY, {"revision": revision, "values": values, "request_id": cmd.request_id,
                                           "key_id": key_id, "applied_at": time.time()})
            except OSError as exc:
                _remove(d / PENDING)
                raise CommandRejected(f"cannot persist the change in {d}: {exc.strerror or exc}") from None
            log.info("remote config: revision %d from key %s: set %s reset %s; restarting to apply", revision,
                     key_id, sorted(set_), sorted(reset))
            self.st.state = "restarting"
            self._restarting = True
            # Restart a moment later, so this reply is handed to the broker first.
            threading.Timer(0.5, self._request_restart).start()
        return {"state": "pending self-check", "revision": revision, "self_check_s": self.st.self_check_s,
                "values": values}

    def on_clean_stop(self) -> None:
        """A clean stop (SIGTERM) during the self-check is not a crash: the next start runs the self-check
        again instead of rolling a good change back."""
        with self._lock:
            pending = self.st.pending
            if pending is None or self._restarting:
                return
            try:
                write_atomic(self.st.dir / PENDING, {**pending, "attempts": 0})
            except OSError as exc:
                log.error("remote config: cannot keep revision %d pending across the stop: %s", self.st.revision,
                          exc.strerror or exc)
                return
            log.info("remote config: stopped during the self-check of revision %d; it runs again at the next start",
                     self.st.revision)

    def tick(self, agent: Any, reply: Replier, connected: bool) -> None:
        """Called about once a second by the agent's main loop: finishes the self-check, sends owed replies."""
        st = self.st
        if self._restarting:
            return
        if st.result is not None and connected and not self._result_sent:
            rid = st.result.get("request_id")
            if isinstance(rid, str):
                reply(rid, st.result)
            self._result_sent = True
            _remove(st.dir / RESULT)
        if st.pending is None or time.monotonic() - self._started < st.self_check_s:
            return
        with self._lock:
            pending, st.pending = st.pending, None
            problems = self_check_problems(agent)
            if problems:
                rollback(st, pending, "self-check failed: " + "; ".join(problems))
                self._result_sent = False
                # The rollback reply goes out from the restarted process, once it is connected.
                self._request_restart()
                return
            _remove(st.dir / PENDING)
            st.state = "committed"
            log.info("remote config: revision %d passed its self-check: committed", st.revision)
            st.result = {"request_id": pending.get("request_id"), "command": "config", "ok": True,
                         "state": "committed", "revision": st.revision}
            write_atomic(st.dir / RESULT, st.result)
            self._result_sent = False
