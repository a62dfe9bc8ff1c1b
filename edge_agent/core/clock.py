# SPDX-License-Identifier: Apache-2.0
"""How good the node's clock is: whether a time service keeps it synchronised (asked of systemd-timedated or
chrony, at most once a minute, since asking forks a process) and the kernel's own offset and error bound
(one system call). Health, doctor and every event's ``clock`` field read it here."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ClockState:
    synced: bool | None  # None: no time service could be asked
    source: str  # which service answered, or why none did
    detail: str = ""


def command_output(argv: list[str], timeout: float = 3.0) -> str | None:
    """A command's standard output, or None when it cannot run, times out or fails."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def probe_clock() -> ClockState:
    """Asks systemd-timedated, then chrony, whether the clock is NTP-synchronised."""
    if shutil.which("timedatectl") and Path("/run/systemd/system").is_dir():
        out = command_output(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        if out is not None and out.strip() in ("yes", "no"):
            return ClockState(out.strip() == "yes", "timedatectl")
    if shutil.which("chronyc"):
        out = command_output(["chronyc", "-n", "tracking"])
        if out is not None:
            leap = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Leap status")), "")
            return ClockState(leap == "Normal", "chrony", f"leap status {leap or 'unknown'}")
    return ClockState(None, "none", "neither timedatectl (systemd) nor chronyc answered")


ClockProbe = Callable[[], ClockState]


class CachedClock:
    """The clock state for the health message, asked at most once a minute (it forks a process)."""

    def __init__(self, probe: ClockProbe = probe_clock, max_age_s: float = 60.0) -> None:
        self._probe = probe
        self._max_age = max_age_s
        self._at = -1e18
        self._state = ClockState(None, "not checked yet")

    def state(self) -> ClockState:
        now = time.monotonic()
        if now - self._at >= self._max_age:
            self._at = now
            try:
                self._state = self._probe()
            except Exception as exc:  # a probe failure must never take health down
                self._state = ClockState(None, "error", str(exc))
        return self._state

    def as_health(self) -> dict[str, Any]:
        s = self.state()
        return {"synced": s.synced, "source": s.source}


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> on 64-bit Linux; the tail pads past the kernel's reserved fields.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                ("_reserved", ctypes.c_int * 32)]


_STA_NANO = 0x2000
_adjtimex: Any = None
if sys.platform == "linux":
    try:
        _adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
        _adjtimex.argtypes = [ctypes.POINTER(_Timex)]
        _adjtimex.restype = ctypes.c_int
    except (OSError, AttributeError):
        _adjtimex = None


def kernel_clock() -> tuple[float | None, float | None]:
    """(offset_ms, max_error_ms) as the kernel holds them (adjtimex(2), read-only: one system call, no
    process). offset: the correction the NTP daemon asked for and the kernel is still slewing in;
    max_error: the daemon's bound on the error, growing 0.5 ms per second between its updates."""
    if _adjtimex is None:
        return None, None
    tx = _Timex()
    if _adjtimex(ctypes.byref(tx)) < 0:
        return None, None
    offset_ms = tx.offset / 1e6 if tx.status & _STA_NANO else tx.offset / 1e3
    return round(offset_ms, 3), round(tx.maxerror / 1e3, 3)


class CaptureClock:
    """What an event says about the clock its times come from. The sync state is the one the health check
    last found (:class:`CachedClock`, asked at most once a minute by the main thread, since
    asking forks a process); offset and error bound are read from the kernel when the event is built,
    within seconds of capture (the kernel slews at most 0.5 ms per second, so they hold for it)."""

    def __init__(self, sync: Callable[[], ClockState] | None = None) -> None:
        self._sync = sync

    def describe(self) -> dict[str, Any]:
        state = self._sync() if self._sync is not None else None
        offset_ms, max_error_ms = kernel_clock()
        return {"synced": None if state is None else state.synced,
                "source": "not checked" if state is None else state.source,
                "offset_ms": offset_ms, "max_error_ms": max_error_ms}
