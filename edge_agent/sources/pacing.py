"""Keeps file-backed sources at their configured frame rate."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps so that successive ``wait`` calls are 1/fps apart, without drifting."""

    def __init__(self, fps: float) -> None:
        self._period = 1.0 / fps
        self._next = time.monotonic()

    def wait(self) -> float:
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
            now = self._next
        # If we fell behind by more than a frame, restart the schedule rather than burst to catch up.
        self._next = max(self._next + self._period, now)
        return now
