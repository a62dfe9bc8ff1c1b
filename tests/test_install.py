"""scripts/install.sh: refuses unsupported systems, --dry-run changes nothing, a real install into a
temporary prefix works and a second run changes nothing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "install.sh"
DEBIAN12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def _run(args: list[str], tmp_path: Path, os_release: str = DEBIAN12, arch: str = "x86_64",
         model: bytes | None = None, script: Path = SCRIPT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    osr = tmp_path / "os-release"
    osr.write_text(os_release)
    env = {**os.environ, "EDGE_AGENT_OS_RELEASE": str(osr), "EDGE_AGENT_ARCH": arch,
           "EDGE_AGENT_MODEL_FILE": str(tmp_path / "no-model")}
    if model is not None:
        (tmp_path / "model").write_bytes(model)
        env["EDGE_AGENT_MODEL_FILE"] = str(tmp_path / "model")
    env.pop("EDGE_AGENT_PREFIX", None)
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)


@pytest.mark.parametrize(
    ("os_release", "arch", "expect"),
    [
        ('PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n', "x86_64", "unsupported OS 'Ubuntu"),
        ('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\nVERSION_ID="11"\n', "aarch64",
         "unsupported OS version"),
        (DEBIAN12, "armv7l", "32-bit Raspberry Pi OS is not supported"),
        (DEBIAN12, "riscv64", "unsupported architecture 'riscv64'"),
    ],
)
def test_refuses_unsupported_os_and_arch(tmp_path: Path, os_release: str, arch: str, expect: str) -> None:
    r = _run(["--dry-run", "--prefix", str(tmp_path / "p")], tmp_path, os_release, arch)
    assert r.returncode == 1
    assert expect in r.stderr
    assert not (tmp_path / "p").exists()


def test_dry_run_prints_actions_and_changes_nothing(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    r = _run(["--dry-run", "--prefix", str(prefix)], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "not a Raspberry Pi: no camera stack" in out
    assert "picamera2" not in out
    assert f"[dry-run] install -d -m 0750 -o root -g edge-agent {prefix}/etc/edge-agent" in out
    assert f"-m venv --system-site-packages {prefix}/opt/edge-agent/venv" in out
    assert f"{prefix}/etc/systemd/system/edge-agent.service" in out
    assert "would be made" in out
    assert "+ " not in out, "a dry run must not execute anything"
    assert not prefix.exists()


def test_pi_gets_the_camera_stack(tmp_path: Path) -> None:
    r = _run(["--dry-run", "--prefix", str(tmp_path / "p")], tmp_path, arch="aarch64",
             model=b"Raspberry Pi 5 Model B Rev 1.0\0")
    assert r.returncode == 0, r.stderr
    assert "Raspberry Pi: with camera stack" in r.stdout
    assert "python3-picamera2" in r.stdout
    assert "numpy<2" in r.stdout  # apt's picamera2 stack is built against numpy 1.x


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    r = _run(["--frobnicate"], tmp_path)
    assert r.returncode == 1 and "unknown option '--frobnicate'" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/dpkg-query").exists(),
                    reason="a real install needs root on Debian")
def test_real_install_into_prefix_then_second_run_changes_nothing(tmp_path: Path) -> None:
    # Install from a snapshot: other work in the checkout must not look like a code change between runs.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("edge_agent", "config", "systemd", "scripts", "docs"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    prefix = tmp_path / "p"
    script = src / "scripts" / "install.sh"
    first = _run(["--prefix", str(prefix)], tmp_path, script=script, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "change(s)" in first.stdout and ", 0 change(s)" not in first.stdout

    exe = prefix / "opt/edge-agent/venv/bin/edge-agent"
    conf = prefix / "etc/edge-agent/edge-agent.toml"
    unit = (prefix / "etc/systemd/system/edge-agent.service").read_text()
    assert f"ExecStart={exe} run --config {conf}" in unit
    assert stat.S_IMODE((prefix / "etc/edge-agent").stat().st_mode) == 0o750
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    data = prefix / "var/lib/edge-agent"
    assert data.owner() == "edge-agent" and stat.S_IMODE(data.stat().st_mode) == 0o750
    # The installed agent is runnable, its config valid (with no node_id: every pole must not share one).
    chk = subprocess.run([str(exe), "check-config", str(conf)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60, check=False)
    assert chk.returncode == 0, chk.stderr
    assert "pole-001" not in chk.stdout
    # Config and unit agree on the data folder (issue 16.10): the one the unit lets the agent write.
    assert f'data_dir = "{data}"' in conf.read_text() and f"ReadWritePaths={data}" in unit
    sysd = subprocess.run([str(prefix / "opt/edge-agent/venv/bin/python"), "-c", "import systemd.daemon"],
                          cwd=tmp_path, timeout=60, check=False)
    assert sysd.returncode == 0, "python3-systemd must be visible in the venv"
    assert "skipped (installing under prefix" in first.stdout

    second = _run(["--prefix", str(prefix)], tmp_path, script=script, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "done, 0 change(s)" in second.stdout, second.stdout
    assert "\n+ " not in second.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_install_script_is_shellcheck_clean() -> None:
    r = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout
