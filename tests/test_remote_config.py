"""Signed cmd/config: whitelist, validation, atomic persistence, restart in place, commit and rollback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, Broker, Collector, wait_until, write_config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.commands import remote_config as rc
from edge_agent.commands.signing import SignedCommandVerifier, sign_command
from edge_agent.config import Config, ConfigError, load
from edge_agent.core.keys import generate_keypair
from edge_agent.core.types import Command, CommandRejected, PipelineStats


@pytest.fixture
def ops_key(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    key = generate_keypair(tmp_path / "keys" / "ops.key", tmp_path / "keys" / "ops.pub")
    return key, tmp_path / "keys" / "ops.pub"


class _Agent:
    def __init__(self, ok: bool) -> None:
        self.stats = PipelineStats()
        self.stats.camera_state = "ok"
        self.stats.frames_processed = 10 if ok else 0
        self._ok = ok

    def healthy(self) -> bool:
        return self._ok


def _base(tmp_path: Path) -> Config:
    return load(write_config(tmp_path / "a.toml", tmp_path / "data", 1883))


def _setup(tmp_path: Path, key: Ed25519PrivateKey, pub: Path) -> tuple[rc.RemoteConfig, list[int]]:
    base = _base(tmp_path)
    _cfg, st = rc.prepare(base, self_check_s=0)
    verifier = SignedCommandVerifier({"ops": rc_load(pub)}, tmp_path / "data" / "nonces.sqlite3",
                                     node_id="pole-test")
    restarts: list[int] = []
    return rc.RemoteConfig(st, verifier, lambda: restarts.append(1)), restarts


def rc_load(pub: Path) -> Any:
    from edge_agent.core.keys import load_public_key

    return load_public_key(pub)


def _cmd(key: Ed25519PrivateKey, rid: str = "c1", **body: Any) -> Command:
    return Command("config", rid, sign_command({"request_id": rid, **body}, key, "ops", node_id="pole-test",
                                               command="config"))


def test_whitelist_keys_exist_in_the_config_schema() -> None:
    for dotted in rc.RUNTIME_KEYS:
        section, key = dotted.split(".")
        assert key in type(getattr(Config(), section)).model_fields, dotted


def test_merge_validates_like_the_file(tmp_path: Path) -> None:
    base = _base(tmp_path)
    assert rc.merge(base, {"motion.threshold": 40}, "x").motion.threshold == 40
    with pytest.raises(ConfigError, match=r"motion\.threshold"):
        rc.merge(base, {"motion.threshold": 999}, "x")
    with pytest.raises(ConfigError, match="not a remotely changeable key"):
        rc.merge(base, {"mqtt.host": "evil.example"}, "x")


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        ({"set": {"mqtt.host": "evil.example"}}, "not remotely changeable: mqtt.host"),
        ({"set": {"motion.threshold": 999}}, "motion.threshold"),
        ({"set": {"motion.masks": [[[0, 0], [2, 0], [0, 1]]]}}, "outside 0..1"),
        ({"set": {}}, "nothing to change"),
        ({"set": ["motion.threshold"]}, "malformed request"),
        # Issue 13.8: what a remote change may set is bounded, and no stray fields ride along.
        ({"set": {"alpr.min_confidence": 1.0}}, "outside what a remote change may set: alpr.min_confidence"),
        ({"set": {"motion.masks": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}, "motion.masks cover 100%"),
        ({"set": {"motion.threshold": 30}, "restart_shell": "rm -rf /"}, "unexpected field"),
    ],
)
def test_bad_changes_are_refused_and_nothing_is_written(tmp_path: Path, ops_key: tuple[Ed25519PrivateKey, Path],
                                                        body: dict[str, Any], expect: str) -> None:
    remote, restarts = _setup(tmp_path, *ops_key)
    with pytest.raises(CommandRejected, match=expect.replace(".", r"\.")):
        remote.handle(_cmd(ops_key[0], **body))
    assert not (tmp_path / "data" / rc.OVERLAY).exists()
    assert not (tmp_path / "data" / rc.PENDING).exists()
    assert not restarts


def test_unsigned_and_untrusted_commands_are_refused(tmp_path: Path, ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    remote, _ = _setup(tmp_path, *ops_key)
    with pytest.raises(CommandRejected, match="missing signature"):
        remote.handle(Command("config", "c1", {"request_id": "c1", "set": {"motion.threshold": 30}}))
    rogue = Ed25519PrivateKey.generate()
    with pytest.raises(CommandRejected, match="bad signature"):
        remote.handle(_cmd(rogue, set={"motion.threshold": 30}))
    st = rc.prepare(_base(tmp_path))[1]
    with pytest.raises(CommandRejected, match="no trusted keys"):
        rc.RemoteConfig(st, None, lambda: None).handle(_cmd(ops_key[0], set={"motion.threshold": 30}))


def test_apply_persists_restarts_and_commits_after_a_passing_self_check(
        tmp_path: Path, ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    remote, restarts = _setup(tmp_path, *ops_key)
    data = tmp_path / "data"
    masks = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.2]]]
    reply = remote.handle(_cmd(ops_key[0], set={"motion.threshold": 40, "motion.masks": masks,
                                               "health.interval_s": 5}))
    assert reply["state"] == "pending self-check" and reply["revision"] == 1
    overlay = json.loads((data / rc.OVERLAY).read_text())
    assert overlay["values"]["motion.threshold"] == 40
    assert oct((data / rc.OVERLAY).stat().st_mode & 0o777) == "0o600"
    assert not list(data.glob(".*.tmp")), "no temporary file may be left behind"
    wait_until(lambda: bool(restarts), 3, "the restart request")
    # A second change while the first is unconfirmed is refused.
    with pytest.raises(CommandRejected, match="self-check"):
        remote.handle(_cmd(ops_key[0], rid="c2", set={"motion.threshold": 41}))

    # The restarted process: the overlay is applied, the self-check is pending.
    cfg, st = rc.prepare(_base(tmp_path), self_check_s=0)
    assert cfg.motion.threshold == 40 and cfg.health.interval_s == 5
    assert cfg.motion.masks == [[(0.0, 0.0), (0.3, 0.0), (0.3, 0.2)]]
    assert st.state == "pending self-check"
    after = rc.RemoteConfig(st, None, lambda: pytest.fail("a passing self-check must not restart"))
    sent: list[tuple[str, dict[str, Any]]] = []
    after.tick(_Agent(ok=True), lambda rid, body: sent.append((rid, body)), connected=True)
    assert st.state == "committed" and not (data / rc.PENDING).exists()
    after.tick(_Agent(ok=True), lambda rid, body: sent.append((rid, body)), connected=True)
    assert sent == [("c1", {"request_id": "c1", "command": "config", "ok": True, "state": "committed",
                            "revision": 1})]
    assert not (data / rc.RESULT).exists()
    assert after.health() == {"revision": 1, "state": "committed",
                              "keys": ["health.interval_s", "motion.masks", "motion.threshold"]}


def test_failed_self_check_rolls_back_to_the_previous_overlay(tmp_path: Path,
                                                              ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    remote, _ = _setup(tmp_path, *ops_key)
    data = tmp_path / "data"
    # Revision 1, committed.
    remote.handle(_cmd(ops_key[0], rid="c1", set={"motion.threshold": 40}))
    _cfg, st = rc.prepare(_base(tmp_path), self_check_s=0)
    rc.RemoteConfig(st, None, lambda: None).tick(_Agent(ok=True), lambda *_: None, connected=True)
    # Revision 2 (reset threshold, set alpha) fails its self-check.
    _cfg, st = rc.prepare(_base(tmp_path), self_check_s=0)
    verifier = SignedCommandVerifier({"ops": rc_load(ops_key[1])}, data / "nonces.sqlite3", node_id="pole-test")
    rc.RemoteConfig(st, verifier, lambda: None).handle(
        _cmd(ops_key[0], rid="c2", set={"motion.alpha": 0.5}, reset=["motion.threshold"]))
    cfg, st = rc.prepare(_base(tmp_path), self_check_s=0)
    assert cfg.motion.alpha == 0.5 and cfg.motion.threshold == 25
    restarts: list[int] = []
    rc.RemoteConfig(st, None, lambda: restarts.append(1)).tick(_Agent(ok=False), lambda *_: None, connected=False)
    assert restarts == [1]
    # After the restart: revision 1 is back, and the rollback is reported once connected.
    cfg, st = rc.prepare(_base(tmp_path), self_check_s=0)
    assert cfg.motion.threshold == 40 and cfg.motion.alpha == 0.1
    assert st.state.startswith("rolled back: self-check failed: processing loop stalled")
    sent: list[tuple[str, dict[str, Any]]] = []
    rc.RemoteConfig(st, None, lambda: None).tick(_Agent(ok=True), lambda r, b: sent.append((r, b)), connected=True)
    assert [(r, b["ok"], b["state"], b["restored_revision"]) for r, b in sent] == [("c2", False, "rolled back", 1)]


def test_a_clean_stop_during_the_self_check_does_not_roll_back(tmp_path: Path,
                                                                ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    remote, _ = _setup(tmp_path, *ops_key)
    remote.handle(_cmd(ops_key[0], set={"motion.threshold": 40}))
    cfg, st = rc.prepare(_base(tmp_path))  # the restart with the change; then SIGTERM mid self-check
    assert cfg.motion.threshold == 40 and st.state == "pending self-check"
    rc.RemoteConfig(st, None, lambda: None).on_clean_stop()
    cfg, st = rc.prepare(_base(tmp_path))  # next start: still the change, self-check again
    assert cfg.motion.threshold == 40 and st.state == "pending self-check"
    cfg, st = rc.prepare(_base(tmp_path))  # but a crash after that is still a crash
    assert cfg.motion.threshold == 25 and st.state.startswith("rolled back")


def test_revision_numbers_are_never_reused_after_a_rollback(tmp_path: Path,
                                                            ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    remote, _ = _setup(tmp_path, *ops_key)
    assert remote.handle(_cmd(ops_key[0], rid="c1", set={"motion.threshold": 40}))["revision"] == 1
    rc.prepare(_base(tmp_path))
    _cfg, st = rc.prepare(_base(tmp_path))  # crashed twice: rolled back to no overlay (revision 0)
    assert st.revision == 0
    verifier = SignedCommandVerifier({"ops": rc_load(ops_key[1])}, tmp_path / "data" / "nonces.sqlite3",
                                     node_id="pole-test")
    again = rc.RemoteConfig(st, verifier, lambda: None).handle(_cmd(ops_key[0], rid="c2",
                                                                     set={"motion.threshold": 41}))
    assert again["revision"] == 2  # not 1 again: "revision 1" names one change only


def test_a_crash_before_the_self_check_decides_rolls_back(tmp_path: Path,
                                                          ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    remote, _ = _setup(tmp_path, *ops_key)
    remote.handle(_cmd(ops_key[0], set={"motion.threshold": 40}))
    cfg, st = rc.prepare(_base(tmp_path))  # first start with the change: then killed
    assert cfg.motion.threshold == 40
    cfg, st = rc.prepare(_base(tmp_path))  # second start: the marker is still there
    assert cfg.motion.threshold == 25
    assert st.state.startswith("rolled back: the agent did not survive")
    assert not (tmp_path / "data" / rc.OVERLAY).exists()


def test_end_to_end_signed_config_over_mqtt_restarts_in_place_and_commits(
        tmp_path: Path, broker: Broker, collector: Collector, agents: list[AgentProcess],
        ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.port, health={"interval_s": 1},
                       remote_config={"self_check_s": 1})
    cfg.write_text(cfg.read_text() + f'[security.trusted_keys]\nops = "{ops_key[1]}"\n')
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    assert agent.proc is not None
    pid = agent.proc.pid
    wait_until(lambda: bool(collector.on("/health")), 30, "first health")
    body = sign_command({"request_id": "cfg-1", "set": {"motion.threshold": 33, "health.interval_s": 2}},
                        ops_key[0], "ops", node_id="pole-test", command="config")
    collector.publish("edge/pole-test/cmd/config", json.dumps(body))
    wait_until(lambda: len(collector.on("/reply/cfg-1")) >= 2, 40, "the pending and the committed replies")
    first, second = (m.json() for m in collector.on("/reply/cfg-1")[:2])
    assert first["ok"] is True and first["state"] == "pending self-check", first
    assert second == {"request_id": "cfg-1", "command": "config", "ok": True, "state": "committed", "revision": 1}
    assert agent.proc.pid == pid and agent.proc.poll() is None, "restart in place keeps the process"
    assert "restarting in place" in agent.output()
    wait_until(lambda: collector.on("/health")[-1].json().get("config", {}).get("state") == "committed", 10,
               "health to show the committed config")
    snap = collector.on("/health")[-1].json()
    assert snap["config"]["revision"] == 1
    assert set(snap["clock"]) == {"synced", "source"}
    assert snap["self_check"] == {"ok": True, "problems": []}
    assert json.loads((tmp_path / "data" / rc.OVERLAY).read_text())["values"]["motion.threshold"] == 33
    # A replayed command is refused.
    collector.publish("edge/pole-test/cmd/config", json.dumps(body))
    wait_until(lambda: len(collector.on("/reply/cfg-1")) >= 3, 10, "the replay's refusal")
    assert "replayed nonce" in collector.on("/reply/cfg-1")[2].json()["error"]
    assert agent.terminate() == 0
    assert os.path.exists(tmp_path / "data" / rc.OVERLAY)


def test_dry_run_validates_without_applying(tmp_path: Path, ops_key: tuple[Ed25519PrivateKey, Path]) -> None:
    remote, restarts = _setup(tmp_path, *ops_key)
    reply = remote.handle(_cmd(ops_key[0], set={"formats.enabled": ["IT", "DE"]}, dry_run=True))
    assert reply["state"].startswith("valid (dry run")
    assert not (tmp_path / "data" / rc.OVERLAY).exists() and not restarts
