# SPDX-License-Identifier: Apache-2.0
"""Bad-input fuzzing (scripts/fuzz.py): every command handler and the config loader, a short run per target in
CI; the full run (1e5 per target) with ``EDGE_FUZZ_EXAMPLES=100000 pytest -m slow tests/test_fuzz.py`` or
``python scripts/fuzz.py --examples 100000``. Plus the inputs the fuzzer found, kept as plain regressions."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

from edge_agent.config import ConfigError, load, validate

sys.path.insert(0, str(REPO / "scripts"))
import fuzz

SHORT = int(os.environ.get("EDGE_FUZZ_SHORT_EXAMPLES", "300"))
FULL = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "100000"))


@pytest.fixture(autouse=True)
def quiet_router() -> Iterator[None]:
    # Each refusal is logged at WARNING; thousands of captured records only slow the run down.
    logger = logging.getLogger("edge_agent")
    old = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(old)


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_fuzz_short(target: str, tmp_path: Path) -> None:
    r = fuzz.run_target(target, SHORT, rng_seed=0, time_box_s=30.0, work=tmp_path)
    assert not r.failure, r.failure
    assert r.examples >= SHORT // 2, r


@pytest.mark.slow
@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_fuzz_full(target: str, tmp_path: Path) -> None:
    r = fuzz.run_target(target, FULL, rng_seed=1, time_box_s=30.0, work=tmp_path)
    assert not r.failure, r.failure


# -- regressions found by the fuzzer ------------------------------------------------------------------------


def test_deeply_nested_toml_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    p = tmp_path / "deep.toml"
    p.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load(p)


@pytest.mark.parametrize("key", [("alpr", "detector_model"), ("mqtt", "password_file"), ("upload", "ca_file"),
                                 ("security", "node_key_file")])
def test_unusable_file_names_are_config_errors(key: tuple[str, str]) -> None:
    section, name = key
    for bad in ("a" * 5000, "x\x00y"):
        raw = {section: {name: bad}}
        if section == "mqtt":
            raw["mqtt"]["username"] = "u"
        with pytest.raises(ConfigError, match=f"{section}.{name}: file not found"):
            validate(raw)


def test_replayed_and_forged_commands_are_refused(tmp_path: Path) -> None:
    import json

    from edge_agent.commands.signing import sign_command

    h = fuzz.build_harness(tmp_path)
    body = sign_command({"request_id": "h1", "list_id": "stolen", "action": "add", "plates": ["AB123CD"]},
                        h.trusted, fuzz.TRUSTED_ID, node_id="pole-fuzz", command="hotlist")
    payload = json.dumps(body).encode()
    assert h.router.handle("hotlist", payload)[1]["ok"] is True
    again = h.router.handle("hotlist", payload)[1]
    assert again["ok"] is False and again["error"].startswith("replayed nonce")
    forged = fuzz.sign(h, {"request_id": "h2", "list_id": "stolen", "action": "delete"}, "untrusted", "hotlist")
    reply = h.router.handle("hotlist", json.dumps(forged).encode())[1]
    assert reply["ok"] is False and reply["error"].startswith("bad signature")
    assert h.hotlists.sizes == {"stolen": 1}


@pytest.mark.parametrize("url", ["https://[abc/x", "http://[::1", "https://h.example:99999999/x", "https://h.example:0/"])
def test_clip_with_an_unparsable_upload_url_is_refused_with_a_reason(tmp_path: Path, url: str) -> None:
    import json

    from edge_agent.commands.signing import sign_command

    h = fuzz.build_harness(tmp_path)
    body = {"request_id": "c1", "camera": "cam0", "start": fuzz._iso(-100), "end": fuzz._iso(-95),
            "agency": "City Police", "purpose": "Proc. 1234/2026", "operator": "Isp. M. Rossi", "upload_url": url,
            "upload_token": "t"}
    for payload in (body, sign_command(body, h.trusted, fuzz.TRUSTED_ID, node_id="pole-fuzz", command="clip")):
        reply = h.router.handle("clip", json.dumps(payload).encode())[1]
        assert reply["ok"] is False and not reply["error"].startswith("internal error"), reply
    assert reply["error"] == "malformed request: upload_url is not a valid URL"


def test_clip_request_with_lone_surrogates_is_still_audited(tmp_path: Path) -> None:
    import json

    h = fuzz.build_harness(tmp_path)
    payload = b'{"request_id": "c2", "agency": "\\ud800", "upload_url": "https://\\udfff/x"}'
    reply = h.router.handle("clip", payload)[1]
    assert reply["ok"] is False and reply["error"] == "missing signature", reply
    h.audit.tick(force=True)  # unsigned: counted in the next refusals summary, not recorded one by one
    last = json.loads((tmp_path / "data" / "audit.log").read_text().splitlines()[-1])
    assert last["entry"]["action"] == "refusals" and last["entry"]["counts"] == {"clip: missing signature": 1}
    # A signed body cannot carry one: it has no canonical UTF-8 form, so no signature covers it.
    assert h.router.handle("clip", b'{"request_id": "c3", "agency": "\\ud800", "key_id": "ops1", "signature": "AA=="}'
                           )[1]["error"].startswith("bad signature")


def test_ids_with_a_trailing_newline_are_refused(tmp_path: Path) -> None:
    # "^...$" with re.match lets one trailing "\n" through: it would end up in topics, file names and lists.
    import json

    from edge_agent.commands.signing import sign_command

    h = fuzz.build_harness(tmp_path)
    rid, reply = h.router.handle("ping", b'{"request_id": "r1\\n"}')
    assert rid is None and reply["ok"] is False and reply["error"].startswith("request_id missing"), reply
    body = sign_command({"request_id": "h1", "list_id": "stolen\n", "action": "add", "plates": ["AB123CD"]},
                        h.trusted, fuzz.TRUSTED_ID, node_id="pole-fuzz", command="hotlist")
    reply = h.router.handle("hotlist", json.dumps(body).encode())[1]
    assert reply["ok"] is False and reply["error"].startswith("list_id"), reply
    with pytest.raises(ConfigError, match="node_id"):
        validate({"node_id": "pole-1\n"})
    with pytest.raises(ConfigError, match=r"mqtt\.prefix"):
        validate({"mqtt": {"prefix": "edge\n"}})
