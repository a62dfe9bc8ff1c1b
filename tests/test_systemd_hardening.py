"""The shipped unit stays hardened. systemd still starts a unit whose hardening line was dropped or misspelt (it
only logs a warning), so check it offline: `systemd-analyze security` must score it at most 2.0, and `verify` must
take every line without a warning."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

UNIT = REPO / "systemd" / "edge-agent.service"
MAX_EXPOSURE = 2.0
# "→ Overall exposure level for edge-agent.service: 1.3 OK 🙂"
OVERALL = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) ")


def _analyze(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    return subprocess.run([exe, "--no-pager", *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def test_security_exposure_is_at_most_2(tmp_path: Path) -> None:
    r = _analyze(["security", "--offline=true", str(UNIT)], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = OVERALL.search(r.stdout)
    assert m, f"no overall exposure line in:\n{r.stdout}{r.stderr}"
    exposed = "\n".join(line for line in r.stdout.splitlines() if line.startswith("✗"))
    assert float(m.group(1)) <= MAX_EXPOSURE, f"exposure {m.group(1)} > {MAX_EXPOSURE}; not hardened:\n{exposed}"


def test_unit_as_installed_under_a_prefix_verifies_clean(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists, so check the unit as scripts/install.sh --prefix writes it, with the
    # same path rewrite, pointing at a stand-in executable.
    prefix = tmp_path / "p"
    exe = prefix / "opt/edge-agent/venv/bin/edge-agent"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    text = UNIT.read_text()
    for path in ("/opt/edge-agent", "/etc/edge-agent", "/var/lib/edge-agent"):
        text = text.replace(path, f"{prefix}{path}")
    unit = tmp_path / "edge-agent.service"
    unit.write_text(text)
    assert f"ExecStart={exe} run" in text
    r = _analyze(["verify", "--man=no", str(unit)], tmp_path)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
