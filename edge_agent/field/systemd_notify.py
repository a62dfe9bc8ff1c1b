"""systemd integration: sd_notify (READY, STATUS, WATCHDOG) and journald logging.

Uses systemd-python when installed (the ``[systemd]`` extra); otherwise speaks the
notify protocol itself: one datagram to $NOTIFY_SOCKET, which is all it is.
"""

from __future__ import annotations

import logging
import os
import socket
import sys


class Notifier:
    def __init__(self) -> None:
        self._addr = os.environ.get("NOTIFY_SOCKET", "")
        self._sd: object | None = None
        try:
            from systemd import daemon  # type: ignore[import-not-found,attr-defined,unused-ignore]

            self._sd = daemon
        except ImportError:
            pass
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval_s: float | None = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        return bool(self._addr)

    def notify(self, state: str) -> bool:
        if not self._addr:
            return False
        if self._sd is not None:
            return bool(self._sd.notify(state))  # type: ignore[attr-defined]
        addr = self._addr
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace socket
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(addr)
                s.sendall(state.encode())
            return True
        except OSError:
            return False

    def ready(self, status: str) -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")


def setup_logging(level: str) -> None:
    """journald when started by systemd (JOURNAL_STREAM is set), plain stderr otherwise."""
    root = logging.getLogger()
    root.setLevel(level)
    handler: logging.Handler | None = None
    if os.environ.get("JOURNAL_STREAM"):
        try:
            from systemd.journal import JournalHandler  # type: ignore[import-not-found,unused-ignore]

            handler = JournalHandler(SYSLOG_IDENTIFIER="edge-agent")
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        # journald adds its own timestamps when it captures stderr.
        fmt = "%(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
    root.handlers[:] = [handler]
    logging.getLogger("paho").setLevel(logging.WARNING)
