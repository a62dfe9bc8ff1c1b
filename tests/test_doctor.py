"""`edge-agent doctor` against a live TLS mosquitto: all OK on a good setup, the right FAIL line on broken ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Broker, free_port, write_config
from test_tls import pki, tls_broker  # noqa: F401  (fixtures)

import edge_agent.pipeline.alpr
from edge_agent.core.clock import ClockState
from edge_agent.field.doctor import TEST_PLATE, UnitState, run_doctor
from edge_agent.pipeline.alpr.types import PlateRead

SYNCED = lambda: ClockState(True, "timedatectl")  # noqa: E731
UNSYNCED = lambda: ClockState(False, "timedatectl")  # noqa: E731
UNIT_OK = lambda: UnitState(True, "enabled", "active")  # noqa: E731


class _FakeReader:
    """Stands in for the shipped models where they are not built yet; reads the plate the test draws."""

    min_confidence = 0.0  # the pipeline sets it to alpr.min_confidence

    def __init__(self, *_a: Any, **_k: Any) -> None:
        pass

    @property
    def model_versions(self) -> dict[str, str]:
        return {"plate_detector": "fake", "plate_ocr": "fake"}

    def read(self, image: np.ndarray, regions: object = ()) -> list[PlateRead]:
        assert image.shape == (720, 1280, 3)
        return [PlateRead(TEST_PLATE, (510, 400, 260, 55), 0.99)]


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_agent.pipeline.alpr.reader import DEFAULT_DETECTOR, DEFAULT_OCR

    if not (DEFAULT_DETECTOR.is_file() and DEFAULT_OCR.is_file()):
        monkeypatch.setattr(edge_agent.pipeline.alpr, "PlateReader", _FakeReader)


def _config(tmp_path: Path, broker: Broker, pki: dict[str, Path], port: int | None = None,  # noqa: F811
            ca: str = "ca", password: str = "s3cret-pw", **sections: dict[str, Any]) -> Path:
    pw = tmp_path / "mqtt-password"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    cfg = write_config(tmp_path / "a.toml", data, port or broker.tls_port,  # type: ignore[attr-defined]
                       mqtt={"host": "localhost", "username": "pole", "password_file": str(pw)},
                       **{"alpr": {"enabled": True}, "outbox": {"max_mb": 16}, **sections})
    cfg.write_text(cfg.read_text() + f'[mqtt.tls]\nca_file = "{pki[ca]}"\ncert_file = "{pki["node_cert"]}"\n'
                   f'key_file = "{pki["node_key"]}"\n')
    return cfg


def _lines(out: str) -> dict[str, str]:
    return {ln.split()[1]: ln for ln in out.splitlines() if ln.split()[0] in ("OK", "WARN", "FAIL") and
            len(ln.split()) > 1 and not ln.startswith(("OK:", "FAIL:"))}


def test_doctor_all_ok_against_live_tls_broker(tmp_path: Path, tls_broker: Broker, pki: dict[str, Path],  # noqa: F811
                                               models: None, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path, tls_broker, pki)
    rc = run_doctor(cfg, clock=SYNCED, unit=UNIT_OK)
    out = capsys.readouterr().out
    lines = _lines(out)
    assert set(lines) == {"config", "keys", "camera", "models", "broker", "mqtt-rt", "clock", "disk", "systemd"}, out
    bad = [ln for ln in lines.values() if not ln.startswith("OK ")]
    assert not bad, out
    assert rc == 0
    assert "TLS, client certificate, user pole" in lines["broker"]
    # The two things a pole's own config should not say, though the test needs them (issue 16.3):
    assert "WARN camera    camera.source is 'demo'" in out and "WARN broker    mqtt.host is localhost" in out
    assert out.rstrip().endswith("0 failed, 2 warning(s), 9 ok")


def test_skipped_checks_say_so_and_an_uncreatable_data_dir_fails(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('data_dir = "/proc/edge-agent-doctor"\n[alpr]\nenabled = false\n')
    rc = run_doctor(cfg, clock=SYNCED, unit=UNIT_OK, skip={"camera", "broker", "mqtt-rt"})
    out = capsys.readouterr().out
    assert rc == 1
    assert "SKIP camera    skipped (--skip)" in out and "SKIP broker" in out and "SKIP mqtt-rt" in out
    assert "FAIL disk      data_dir /proc/edge-agent-doctor" in out
    assert "3 skipped" in out


@pytest.mark.parametrize(
    ("setup", "check", "expect"),
    [
        ("wrong_port", "broker", "connection refused"),
        ("bad_ca", "broker", "TLS certificate not trusted"),
        ("bad_password", "broker", "refused the connection"),
        ("bad_model", "models", "cannot load the plate models"),
        ("unsynced", "clock", "not synchronised"),
        ("readable_key", "keys", "readable or writable by every user"),
    ],
)
def test_doctor_broken_setups_give_the_right_fail_line(tmp_path: Path, tls_broker: Broker,  # noqa: F811
                                                       pki: dict[str, Path], capsys: pytest.CaptureFixture[str],  # noqa: F811
                                                       setup: str, check: str, expect: str) -> None:
    kw: dict[str, Any] = {}
    if setup == "wrong_port":
        kw["port"] = free_port()
    elif setup == "bad_ca":
        kw["ca"] = "other_ca"
    elif setup == "bad_password":
        kw["password"] = "wrong"
    elif setup == "bad_model":
        junk = tmp_path / "junk.tflite"
        junk.write_bytes(b"not a model")
        kw["alpr"] = {"enabled": True, "detector_model": str(junk)}
    elif setup == "readable_key":
        pki["node_key"].chmod(0o644)
    cfg = _config(tmp_path, tls_broker, pki, **kw)
    rc = run_doctor(cfg, clock=UNSYNCED if setup == "unsynced" else SYNCED, unit=UNIT_OK, skip={"camera"})
    out = capsys.readouterr().out
    lines = _lines(out)
    assert rc == 1, out
    assert lines[check].startswith("FAIL"), out
    assert expect in lines[check], out
    assert "-> fix: " in lines[check]
    if check == "broker":
        assert lines["mqtt-rt"].startswith("FAIL")
    assert "Traceback" not in out


def test_doctor_reports_invalid_config_and_warns_without_systemd(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nfps = -1\n")
    assert run_doctor(bad) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL config") and "camera.fps" in out
    from edge_agent.field.doctor import check_unit

    r = check_unit(lambda: UnitState(False))
    assert r.status == "WARN"
    r = check_unit(lambda: UnitState(True, "disabled", "inactive"))
    assert r.status == "FAIL" and "systemctl enable --now" in r.line()
