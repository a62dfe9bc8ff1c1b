"""Config validation: every bad input is named by key and reason; the example config is valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from edge_agent.cli import main
from edge_agent.config import Config, ConfigError, load

EXAMPLE = REPO / "config" / "edge-agent.example.toml"


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    f = tmp_path / "c.toml"
    f.write_text(text)
    rc = main(["check-config", str(f)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_example_config_is_valid_and_documents_every_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith("OK node ")
    text = EXAMPLE.read_text()

    def keys(model: type[Config] | object, prefix: str = "") -> list[str]:
        out = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            ann = field.annotation
            sub = getattr(ann, "model_fields", None)
            args = getattr(ann, "__args__", ())
            nested = next((a for a in args if hasattr(a, "model_fields")), None)
            if sub is not None:
                out += keys(ann, f"{prefix}{name}.")
            elif nested is not None:
                out += keys(nested, f"{prefix}{name}.")
            else:
                out.append(f"{prefix}{name}")
        return out

    for key in keys(Config):
        leaf = key.rsplit(".", 1)[-1]
        assert f"{leaf} =" in text or f"# {leaf} =" in text, f"example config does not document {key}"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("[camera]\nfps = -1\n", "camera.fps"),
        ("[camra]\nfps = 5\n", "camra: unknown key"),
        ("[camera]\nfsp = 5\n", "camera.fsp: unknown key"),
        ("[mqtt]\nport = \"high\"\n", "mqtt.port"),
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("[alpr]\nocr_model = \"/nonexistent/ocr.tflite\"\n", "alpr.ocr_model: file not found"),
        ("[mqtt.tls]\nca_file = \"/nonexistent/ca.pem\"\n", "mqtt.tls.ca_file: file not found"),
        ("[motion]\nblur = 4\n", "motion.blur: must be odd"),
        ("[motion]\nmasks = [[[0, 0], [1.5, 0], [0, 1]]]\n", "outside 0..1"),
        ("node_id = \"a/b\"\n", "node_id"),
        ("[camera\n", "not valid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expect: str) -> None:
    rc, _out, err = _check(tmp_path, text, capsys)
    assert rc == 2
    assert expect in err
    assert "Traceback" not in err


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_run_refuses_bad_config_with_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[camera]\nfps = 0\n")
    p = subprocess.run([sys.executable, "-m", "edge_agent", "run", "--config", str(f)], capture_output=True,
                       text=True, timeout=60, cwd=REPO)
    assert p.returncode == 2
    assert "camera.fps" in p.stderr and "Traceback" not in p.stderr


def test_defaults_need_no_file() -> None:
    cfg = load(None)
    assert cfg.camera.source == "demo"
    assert cfg.mqtt.host == "localhost" and cfg.mqtt.port == 1883
    with pytest.raises(ConfigError):
        load(Path("/nonexistent.toml"))


def test_credentials_not_in_summary() -> None:
    cfg = Config.model_validate({"camera": {"source": "rtsp://admin:hunter2@10.0.0.5/live"}})
    assert "hunter2" not in cfg.summary()


def test_tls_hostname_switch_is_named_for_what_it_does() -> None:
    # Issue 13.8: "insecure_skip_verify" only ever skipped the host-name check; the old name is refused.
    from edge_agent.config import ConfigError, validate

    with pytest.raises(ConfigError, match="renamed insecure_skip_hostname_check"):
        validate({"mqtt": {"tls": {"insecure_skip_verify": True}}})
    assert validate({"mqtt": {"tls": {"insecure_skip_hostname_check": True}}}).mqtt.tls is not None


def test_upload_allowed_hosts(tmp_path: Path) -> None:
    import time

    from edge_agent.commands.signing import SignedCommandVerifier, iso_utc, sign_command
    from edge_agent.config import ConfigError, validate
    from edge_agent.core.keys import generate_keypair
    from edge_agent.core.types import CommandRejected
    from edge_agent.footage.clips.request import Limits, parse_clip_request

    with pytest.raises(ConfigError, match=r"upload\.allowed_hosts"):
        validate({"upload": {"allowed_hosts": ["https://evidence.example/x"]}})
    assert validate({"upload": {"allowed_hosts": ["Evidence.Example"]}}).upload.allowed_hosts == ["evidence.example"]
    key = generate_keypair(tmp_path / "ops.key", tmp_path / "ops.pub")
    verifier = SignedCommandVerifier({"ops": key.public_key()}, tmp_path / "n.sqlite3", node_id="p1")
    from datetime import UTC, datetime

    now = time.time()
    body = {"request_id": "c1", "camera": "cam0", "start": iso_utc(datetime.fromtimestamp(now - 20, UTC)),
            "end": iso_utc(datetime.fromtimestamp(now - 10, UTC)), "agency": "City Police",
            "purpose": "Proc. 1234/2026", "operator": "Isp. M. Rossi",
            "upload_url": "https://elsewhere.example/in", "upload_token": "t"}
    # (the token in clear: sealing is tested in test_sealing.py)
    limits = Limits("cam0", 60, now - 100, False, ("evidence.example",), require_sealed=False)
    with pytest.raises(CommandRejected, match=r"'elsewhere\.example' is not in upload\.allowed_hosts"):
        parse_clip_request(sign_command(body, key, "ops", node_id="p1", command="clip"), verifier, now, limits, key)
    ok = parse_clip_request(sign_command({**body, "upload_url": "https://EVIDENCE.example/in"}, key, "ops",
                                         node_id="p1", command="clip"), verifier, now, limits, key)
    assert ok.upload_host == "EVIDENCE.example"
