# SPDX-License-Identifier: Apache-2.0
"""Children of the test and benchmark harnesses (agents, brokers, upload servers) die with their parent.

A harness stopped by a signal it cannot catch (SIGKILL, or SIGTERM to pytest) leaves no cleanup behind:
an orphaned agent kept a core busy for hours once, skewing every timing after it. Linux's
PR_SET_PDEATHSIG makes the kernel kill the child when the parent goes; it survives exec (taskset, node).
"""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For ``subprocess.Popen(..., preexec_fn=die_with_parent)``: runs in the child before exec."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
