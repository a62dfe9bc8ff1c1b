"""The fault drill's short version: broker restarts, an outage, SIGKILLs, disk full, camera loss: nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))


def test_quick_fault_drill_loses_nothing(capsys: object) -> None:
    import fault_drill

    rc = fault_drill.main(["--quick", "--json"])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    results = json.loads(out.strip().splitlines()[-1])
    ran = [r for r in results if "skipped" not in r]
    assert {r["scenario"] for r in ran} >= {"broker_restart", "outage", "sigkill", "camera_loss"}
    for r in ran:
        assert r["lost"] == 0, r
        assert r["generated"] > 0, r
        assert r["delivered"] + r["dropped_by_policy"] == r["generated"], r
    outage = next(r for r in ran if r["scenario"] == "outage")
    assert outage["backlog"] > 20 and outage["drain_rate_per_s"] > 0
    assert rc == 0
    assert Path(fault_drill.__file__).parent.name == "scripts"


@pytest.mark.parametrize("used", [0, 4096, 5000])
def test_fill_disk_fills_whatever_is_left(tmp_path: Path, used: int) -> None:
    # A write the filesystem cuts short leaves bytes buffered, which closing the file flushes into a full disk
    # (4096 bytes used before, on a 1 MB tmpfs): the drill once died of that ENOSPC instead of injecting it.
    import fault_drill

    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tmp_path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs (needs root)")
    try:
        if used:
            (tmp_path / "used").write_bytes(b"x" * used)
        filler = fault_drill.fill_disk(tmp_path)
        with pytest.raises(OSError):
            (tmp_path / "more").write_bytes(b"x" * 65536)
        filler.unlink(missing_ok=True)
        (tmp_path / "more").write_bytes(b"x" * 65536)  # the space is back
    finally:
        subprocess.run(["umount", "-l", str(tmp_path)], check=False)


@pytest.mark.slow
def test_full_fault_drill_loses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """The full drill (20 SIGKILLs, a long outage; ``EDGE_DRILL_OUTAGE_S``, default 600 s, for thousands queued)."""
    import fault_drill

    outage_s = os.environ.get("EDGE_DRILL_OUTAGE_S", "600")
    rc = fault_drill.main(["--json", "--outage-s", outage_s])
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(r.get("lost", 0) == 0 for r in results), results
    kills = next(r for r in results if r["scenario"] == "sigkill")
    assert kills["generated"] >= 100, kills
    outage = next(r for r in results if r["scenario"] == "outage")
    assert outage["backlog"] >= 10 * float(outage_s) / 2, "a backlog of thousands for a 10-minute outage"
    assert rc == 0
