# SPDX-License-Identifier: Apache-2.0
"""Clip requests end to end: a real agent recording a real camera feed, real mosquitto, real HTTPS
receivers (the project's in-memory tus receiver, and the tus reference server for the restarts); signed
request -> exact clip -> signed manifest -> resumable upload -> verify-clip; every rejection reason; the
audit trail."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import AgentProcess, Broker, Collector, wait_until, write_config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upload_receiver import Receiver, make_tls

from edge_agent.cli import main
from edge_agent.commands.signing import sign_command
from edge_agent.core.keys import generate_keypair, load_public_key
from edge_agent.core.sealing import context_for, seal
from edge_agent.footage.audit import verify_file
from edge_agent.footage.clips.upload import Uploader, UploadError, UploadSettings

if TYPE_CHECKING:
    from tus_fixture import TusServer

pytest_plugins = ("tus_fixture",)  # tus_server, tus_token

TOKEN = "s3cret-bearer-token-for-case-42"


def _node_pub(tmp_path: Path) -> Path:
    """The public key the agent made for itself under its data_dir (what 'edge-agent provision' prints)."""
    return tmp_path / "data" / "keys" / "node-signing.pub"


def _sealed(token: str, request_id: str, node_pub: Path, node: str = "pole-test") -> dict[str, str]:
    return {"upload_token_sealed": seal(token, load_public_key(node_pub), context_for(node, request_id))}


def _sign(body: dict[str, Any], key: Ed25519PrivateKey, key_id: str = "ops1", node: str = "pole-test",
          command: str = "clip", **kw: Any) -> dict[str, Any]:
    return sign_command(body, key, key_id, node_id=node, command=command, **kw)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _agent_config(tmp_path: Path, port: int, ops_pub: Path, ca: Path | None, **upload_over: Any) -> Path:
    upload: dict[str, Any] = {"max_kbps": 8000, "chunk_kb": 16, "retry_min_s": 0.2, "retry_max_s": 0.5,
                              "progress_interval_s": 0.1, **upload_over}
    if ca is not None:
        upload["ca_file"] = str(ca)
    cfg = write_config(tmp_path / "agent.toml", tmp_path / "data", port,
                       camera={"width": 320, "height": 240, "fps": 10},
                       motion={"enabled": False}, events={"motion_events": False},
                       recorder={"enabled": True, "segment_s": 2},
                       clips={"max_clip_s": 30, "wait_for_footage_s": 10}, upload=upload,
                       audit={"refusal_summary_s": 1})
    cfg.write_text(cfg.read_text() + f'[security.trusted_keys]\nops1 = "{ops_pub}"\n')
    return cfg


@pytest.fixture
def ops_key(tmp_path: Path) -> tuple[Path, Path]:
    key, pub = tmp_path / "ops" / "ops1.key", tmp_path / "ops" / "ops1.pub"
    generate_keypair(key, pub)
    return key, pub


def _health(collector: Collector) -> dict[str, Any]:
    msgs = collector.on("/health")
    return msgs[-1].json() if msgs else {}


def test_clip_request_end_to_end_with_interrupted_upload(
        tmp_path: Path, broker: Broker, collector: Collector, agents: list[AgentProcess],
        ops_key: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ca, cert, key = make_tls(tmp_path / "tls")
    rx = Receiver(TOKEN, (ca, cert, key), cut_after=8_000).start()
    try:
        cfg = _agent_config(tmp_path, broker.port, ops_key[1], ca)
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        agents.append(agent)
        wait_until(lambda: (_health(collector).get("footage", {}).get("oldest_age_s") or 0) > 4.5, 40,
                   "4.5 s of recorded footage in health")
        token_file = tmp_path / "ops" / "token"
        token_file.write_text(TOKEN)
        now = datetime.now(UTC)
        start, end = now - timedelta(seconds=4), now - timedelta(seconds=1.5)
        rc = main(["ops", "request-clip", "--node", "pole-test", "--key", str(ops_key[0]), "--key-id", "ops1",
                   "--agency", "City Police", "--purpose", "Proc. 1234/2026 (hit and run)",
                   "--operator", "Isp. M. Rossi, matr. 4711", "--upload-url", rx.url, "--token-file", str(token_file),
                   "--node-key", str(_node_pub(tmp_path)),
                   "--start", _iso(start), "--end", _iso(end), "--request-id", "case-42-a",
                   "--port", str(broker.port), "--timeout", "60"])
        out = capsys.readouterr().out
        assert rc == 0, out + agent.output()
        states = [json.loads(line)["state"] for line in out.splitlines()[1:]]
        assert states[0] == "accepted" and "cut" in states and "uploading" in states and states[-1] == "done"
        # The link died 8 kB into the clip; the upload resumed from what the receiver had, not from 0.
        assert rx.cuts == 1
        clip_offsets = [off for name, off in rx.patches if name == "case-42-a.mp4"]
        assert clip_offsets[0] == 0 and 8_000 in clip_offsets
        assert rx.metadata["case-42-a.mp4"] == {"filename": "case-42-a.mp4", "request_id": "case-42-a"}
        clip, manifest = tmp_path / "case-42-a.mp4", tmp_path / "case-42-a.manifest.json"
        clip.write_bytes(rx.files["case-42-a.mp4"])
        manifest.write_bytes(rx.files["case-42-a.manifest.json"])
        m = json.loads(manifest.read_bytes())
        assert m["node_id"] == "pole-test" and m["agency"] == "City Police" and m["request_id"] == "case-42-a"
        assert m["purpose"] == "Proc. 1234/2026 (hit and run)" and m["operator"] == "Isp. M. Rossi, matr. 4711"
        assert 20 <= m["clip"]["frames"] <= 27  # 2.5 s at 10 fps
        node_pub = tmp_path / "data" / "keys" / "node-signing.pub"
        assert main(["ops", "verify-clip", str(clip), str(manifest), "--node-key", str(node_pub)]) == 0
        verified = capsys.readouterr().out
        assert verified.startswith("OK case-42-a.mp4")
        assert "for City Police (Isp. M. Rossi, matr. 4711), purpose Proc. 1234/2026 (hit and run)" in verified

        # Tampering with either file is caught.
        data = bytearray(clip.read_bytes())
        data[len(data) // 2] ^= 0xFF
        (tmp_path / "bad.mp4").write_bytes(data)
        assert main(["ops", "verify-clip", str(tmp_path / "bad.mp4"), str(manifest)]) == 1
        assert "SHA-256 does not match" in capsys.readouterr().out
        (tmp_path / "bad.json").write_text(json.dumps({**m, "agency": "Someone Else"}))
        assert main(["ops", "verify-clip", str(clip), str(tmp_path / "bad.json")]) == 1
        assert "bad signature" in capsys.readouterr().out
        generate_keypair(tmp_path / "other.key", tmp_path / "other.pub")
        assert main(["ops", "verify-clip", str(clip), str(manifest), "--node-key", str(tmp_path / "other.pub")]) == 1

        # The audit trail: accepted, then uploaded, as events and in the chained log.
        wait_until(lambda: len([e for e in collector.events() if e["type"] == "audit"]) >= 2, 10, "audit events")
        audits = [e for e in collector.events() if e["type"] == "audit"]
        assert [a["entry"]["decision"] for a in audits] == ["accepted", "uploaded"]
        assert audits[0]["entry"]["purpose"] == m["purpose"] and audits[0]["entry"]["operator"] == m["operator"]
        up = audits[1]["entry"]
        assert up["sha256"] == m["clip"]["sha256"] and audits[1]["prev_hash"] == audits[0]["audit_hash"]
        # manifest_sha256 is the hash of the manifest bytes the receiver got.
        assert up["manifest_sha256"] == hashlib.sha256(rx.files["case-42-a.manifest.json"]).hexdigest()
        # Each event carries what the operations room needs to recompute the record's hash and check it.
        from edge_agent.footage.audit import line_hash

        assert all(line_hash(a["audit_seq"], a["audit_ts"], a["prev_hash"], a["entry"]) == a["audit_hash"]
                   for a in audits)
        head = f"{audits[1]['audit_seq']}:{audits[1]['audit_hash']}"
        assert main(["audit", "verify", "--config", str(cfg), "--head", head]) == 0
        assert "signatures checked" in capsys.readouterr().out

        # The same request_id again, properly signed with a fresh nonce: refused (its files are at the receiver).
        rc = main(["ops", "request-clip", "--node", "pole-test", "--key", str(ops_key[0]), "--key-id", "ops1",
                   "--agency", "City Police", "--purpose", "Proc. 1234/2026 (hit and run)",
                   "--operator", "Isp. M. Rossi, matr. 4711", "--upload-url", rx.url, "--token-file", str(token_file),
                   "--node-key", str(_node_pub(tmp_path)),
                   "--start", _iso(start), "--end", _iso(end), "--request-id", "case-42-a",
                   "--port", str(broker.port), "--timeout", "20"])
        assert rc == 1 and "duplicate request_id" in capsys.readouterr().out
        wait_until(lambda: _health(collector)["uploads"]["done"] == 1, 10, "health to count the upload")
        assert _health(collector)["footage"]["disk_mb"] > 0
        assert TOKEN not in agent.output() and TOKEN not in json.dumps(audits)
        # Sealed to the node's key: whoever reads cmd/# on the broker never sees the token.
        requests = collector.on("/cmd/clip")
        assert len(requests) == 2 and all("upload_token_sealed" in m.json() for m in requests)
        assert not any(TOKEN.encode() in m.payload for m in requests)
        assert agent.terminate() == 0
    finally:
        rx.stop()


def test_every_rejection_has_its_reason_and_is_audited(
        tmp_path: Path, broker: Broker, collector: Collector, agents: list[AgentProcess],
        ops_key: tuple[Path, Path]) -> None:
    cfg = _agent_config(tmp_path, broker.port, ops_key[1], None)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: bool(_health(collector).get("footage")), 30, "the agent's first health")
    key = Ed25519PrivateKey.from_private_bytes(b"\x00" * 32)  # not trusted
    from edge_agent.core.keys import load_private_key

    ops = load_private_key(ops_key[0])
    now = datetime.now(UTC)

    def body(rid: str, **over: Any) -> dict[str, Any]:
        b = {"request_id": rid, "camera": "cam0", "start": _iso(now - timedelta(seconds=20)),
             "end": _iso(now - timedelta(seconds=10)), "agency": "City Police", "purpose": "Proc. 1234/2026",
             "operator": "Isp. M. Rossi", "upload_url": "https://127.0.0.1:9/up",
             **_sealed(TOKEN, rid, _node_pub(tmp_path))}
        b.update(over)
        return b

    def unsealed(b: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in b.items() if k != "upload_token_sealed"}

    replayed = _sign(body("r-replay-1", end=_iso(now - timedelta(seconds=1)), start=_iso(now - timedelta(seconds=100))),
                     ops)
    # (request id, payload, reason; None: cannot be answered, True at the end: refused after verification, so
    # recorded one by one; the others are counted in a "refusals" summary record)
    cases: list[tuple[str, dict[str, Any] | bytes, str | None, bool]] = [
        ("r-unsigned", body("r-unsigned", expires=_iso(now + timedelta(minutes=5)), nonce="n" * 20),
         "missing signature", False),
        ("r-badsig", {**_sign(body("r-badsig"), ops), "agency": "Someone Else"}, "bad signature", False),
        ("r-unknown", _sign(body("r-unknown"), key, "ops9"), "unknown key", False),
        ("r-expired", _sign(body("r-expired"), ops, ttl_s=10, now=now - timedelta(minutes=5)), "expired", False),
        ("r-extra", _sign(body("r-extra", priority="high"), ops), "unexpected fields", False),
        ("r-unbound", sign_command(body("r-unbound"), ops, "ops1"), "malformed request: node_id and command", False),
        ("r-pole-b", _sign(body("r-pole-b"), ops, node="pole-b"), "wrong node", False),
        ("r-as-hotlist", _sign(body("r-as-hotlist"), ops, command="hotlist"), "wrong command", False),
        ("r-replay-1", replayed, "range too long", True),
        ("r-replay-1", replayed, "replayed nonce", False),
        ("r-old", _sign(body("r-old", start=_iso(now - timedelta(days=9)),
                             end=_iso(now - timedelta(days=9) + timedelta(seconds=5))), ops),
         "range outside retention", True),
        ("r-future", _sign(body("r-future", end=_iso(now + timedelta(seconds=5))), ops),
         "range outside retention: end is in the future", True),
        ("r-http", _sign(body("r-http", upload_url="http://127.0.0.1:9/up"), ops),
         "malformed request: upload_url must be an https:// URL", True),
        ("r-query", _sign(body("r-query", upload_url="https://127.0.0.1:9/up?x=1"), ops),
         "malformed request: upload_url must have no query", True),
        ("r-fragment", _sign(body("r-fragment", upload_url="https://127.0.0.1:9/up#frag"), ops),
         "malformed request: upload_url must have no query", True),
        ("r-camera", _sign(body("r-camera", camera="cam7"), ops), "unknown camera", True),
        # The token: in clear (clips.require_sealed_token), sealed for another request, for another node's key.
        ("r-clear", _sign(unsealed(body("r-clear")) | {"upload_token": TOKEN}, ops), "upload_token in clear refused",
         True),
        ("r-moved", _sign(body("r-moved") | _sealed(TOKEN, "r-other", _node_pub(tmp_path)), ops),
         "malformed request: upload_token_sealed does not open", True),
        ("r-other-key", _sign(body("r-other-key") | _sealed(TOKEN, "r-other-key", ops_key[1]), ops),
         "malformed request: upload_token_sealed does not open", True),
        ("r-garbled", _sign(body("r-garbled", upload_token_sealed="A" * 40), ops),
         "malformed request: upload_token_sealed too short", True),
        ("r-none", _sign(unsealed(body("r-none")), ops), "malformed request: give exactly one of", True),
        ("r-both", _sign(body("r-both") | {"upload_token": TOKEN}, ops), "malformed request: give exactly one of",
         True),
        ("", b"{not json", None, False),
        ("", b'{"request_id": 1' + b"0" * 5000 + b"}", None, False),
    ]
    for _rid, payload, _, _ in cases:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        collector.publish("edge/pole-test/cmd/clip", raw)
    expected = [(rid, reason) for rid, _, reason, _ in cases if reason is not None]
    wait_until(lambda: len(collector.on("/reply/" + "r-both")) >= 1, 20, "replies to every request")
    individual = [(rid, reason) for rid, _, reason, one in cases if one]
    wait_until(lambda: any(e["type"] == "audit" and e["entry"]["action"] == "refusals" for e in collector.events()),
               20, "the refusals summary")
    replies = [m.json() for m in collector.messages if "/reply/" in m.topic]
    got = [(r["request_id"], r["error"]) for r in replies]
    assert len(got) == len(expected)
    for (rid, reason), (grid, error) in zip(expected, got, strict=True):
        assert grid == rid and error.startswith(reason), (rid, error)
    assert all(not r["ok"] for r in replies)
    audits = [e["entry"] for e in collector.events() if e["type"] == "audit"]
    one_by_one = [a for a in audits if a["action"] == "clip_request"]
    assert [(a["request_id"], a["decision"]) for a in one_by_one] == [(rid, "refused") for rid, _ in individual]
    for a, (_rid, reason) in zip(one_by_one, individual, strict=True):
        assert a["reason"].startswith(reason) and a["key_id"] == "ops1" and a["upload_host"] == "127.0.0.1:9"
    summaries = [a for a in audits if a["action"] == "refusals"]
    assert sum(s["total"] for s in summaries) == len(cases) - len(individual)
    counts: dict[str, int] = {}
    for summary in summaries:
        for k, v in summary["counts"].items():
            counts[k] = counts.get(k, 0) + v
    assert counts["clip: malformed JSON"] == 2 and counts["clip: wrong node"] == 1
    assert counts["clip: replayed nonce"] == 1
    assert verify_file(tmp_path / "data" / "audit.log").entries == len(one_by_one) + len(summaries)
    assert TOKEN not in agent.output()


def test_upload_is_bandwidth_capped_and_refused_token_fails_fast(tmp_path: Path) -> None:
    rx = Receiver(TOKEN).start()
    try:
        f = tmp_path / "blob"
        f.write_bytes(bytes(range(256)) * 1200)  # 300 kB
        up = Uploader(UploadSettings(max_kbps=2000, chunk_bytes=64 * 1024, retry_min_s=0.1, retry_max_s=0.1))
        t0 = time.monotonic()
        up.upload(rx.url, TOKEN, f, "blob")
        elapsed = time.monotonic() - t0
        assert bytes(rx.files["blob"]) == f.read_bytes()
        assert elapsed >= 1.0  # 300 kB at 250 kB/s is 1.2 s
        with pytest.raises(UploadError, match="HTTP 401"):
            up.upload(rx.url, "wrong-token", f, "blob2")
        assert rx.auth_failures == 1
    finally:
        rx.stop()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_upload_continues_after_the_agent_is_killed(
        tmp_path: Path, broker: Broker, collector: Collector, agents: list[AgentProcess],
        ops_key: tuple[Path, Path], how: str, tus_server: TusServer, tus_token: str) -> None:
    from edge_agent.core.keys import load_private_key

    # The tus reference server; a slow link (64 kbit/s, 4 kB chunks) so the kill lands mid-upload.
    cfg = _agent_config(tmp_path, broker.port, ops_key[1], tus_server.ca, max_kbps=64, chunk_kb=4)
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: (_health(collector).get("footage", {}).get("oldest_age_s") or 0) > 4.5, 40,
               "4.5 s of recorded footage")
    now = datetime.now(UTC)
    body = {"request_id": "case-7", "camera": "cam0", "start": _iso(now - timedelta(seconds=4)),
            "end": _iso(now - timedelta(seconds=1.5)), "agency": "City Police", "purpose": "Proc. 7/2026",
            "operator": "Isp. M. Rossi", "upload_url": tus_server.endpoint,
            **_sealed(tus_token, "case-7", _node_pub(tmp_path))}
    collector.publish("edge/pole-test/cmd/clip", json.dumps(_sign(body, load_private_key(ops_key[0]))))
    wait_until(lambda: tus_server.held("case-7.mp4") >= 8000, 30, "8 kB of the clip on the server")
    if how == "SIGKILL":
        agent.kill()
    else:
        assert agent.terminate() == 0  # a clean stop leaves the job for the next start, not failed
        assert not any(m.json()["state"] == "failed" for m in collector.on("/reply/case-7"))
    before = tus_server.held("case-7.mp4")
    cut = next(m.json() for m in collector.on("/reply/case-7") if m.json()["state"] == "cut")
    assert before < cut["bytes"], "the clip was uploaded before the kill; make it longer"
    requests_before = len(tus_server.requests())

    agents.append(AgentProcess(cfg, tmp_path / "agent2.log").start())
    wait_until(lambda: any(m.json()["state"] in ("done", "failed") for m in collector.on("/reply/case-7")),
               60, "the upload to finish after the restart")
    final = collector.on("/reply/case-7")[-1].json()
    assert final["state"] == "done", final
    assert final["sha256"] == cut["sha256"]  # the same clip, not a new cut
    clip = tus_server.upload("case-7.mp4")  # exactly one upload: the restart resumed the stored one
    assert clip.metadata == {"filename": "case-7.mp4", "request_id": "case-7"}
    after = tus_server.requests()[requests_before:]
    path = f"/files/{clip.id}"
    head = next(i for i, r in enumerate(after) if r["method"] == "HEAD" and r["path"] == path)
    resumed = [int(str(r["offset"])) for r in after[head:] if r["method"] == "PATCH" and r["path"] == path]
    assert resumed and resumed[0] >= before and 0 not in resumed  # continued, not restarted
    assert hashlib.sha256(clip.data).hexdigest() == cut["sha256"]
    manifest = tus_server.upload("case-7.manifest.json").data
    assert json.loads(manifest)["clip"]["sha256"] == cut["sha256"]
    assert final["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()  # of the bytes the server holds
    assert "resuming request case-7" in (tmp_path / "agent2.log").read_text()
    assert not list((tmp_path / "data" / "clips").glob("case-7*"))  # cleaned up once done
    assert (tmp_path / "data" / "clips" / "jobs.sqlite3").stat().st_mode & 0o077 == 0  # it held the token
    # The token does not outlive its job on disk: not in the job store, its WAL, or anywhere under data_dir
    # (the job ends a moment after its "done" reply).
    def token_on_disk() -> list[Path]:
        return [f for f in (tmp_path / "data").rglob("*") if f.is_file() and tus_token.encode() in f.read_bytes()]

    wait_until(lambda: not token_on_disk(), 10, "the token to be wiped from disk")
    # Nor do the upload URLs (the job store kept them for the restart).
    wait_until(lambda: not [f for f in (tmp_path / "data").rglob("*")
                            if f.is_file() and clip.id.encode() in f.read_bytes()], 10, "the upload URL to be wiped")


def test_purpose_and_operator_are_required_validated_and_signed_into_the_manifest(tmp_path: Path) -> None:
    from edge_agent.commands.signing import SignedCommandVerifier
    from edge_agent.core.types import CommandRejected
    from edge_agent.footage.audit_trail import request_fields
    from edge_agent.footage.clips.manifest import VerifyError, build_manifest, verify_clip
    from edge_agent.footage.clips.request import Limits, parse_clip_request

    ops = generate_keypair(tmp_path / "ops.key", tmp_path / "ops.pub")
    verifier = SignedCommandVerifier({"ops1": ops.public_key()}, tmp_path / "n.sqlite3", node_id="pole-test")
    now = datetime.now(UTC)
    limits = Limits("cam0", 60, now.timestamp() - 100, False)
    node = generate_keypair(tmp_path / "node.key", tmp_path / "node.pub")
    body = {"request_id": "case-9", "camera": "cam0", "start": _iso(now - timedelta(seconds=20)),
            "end": _iso(now - timedelta(seconds=10)), "agency": "Polizia Locale",
            "purpose": "Denuncia n. 5/2026 (Procura di Milano)", "operator": "Isp. M. Rossi, matr. 4711",
            "upload_url": "https://evidence.example/in", **_sealed(TOKEN, "case-9", tmp_path / "node.pub")}
    req = parse_clip_request(_sign(body, ops), verifier, now.timestamp(), limits, node)
    assert (req.purpose, req.operator, req.upload_token) == (body["purpose"], body["operator"], TOKEN)
    for name in ("purpose", "operator"):
        without = {k: v for k, v in body.items() if k != name}
        with pytest.raises(CommandRejected, match=rf"malformed request: missing fields \['{name}'\]"):
            parse_clip_request(_sign(without, ops), verifier, now.timestamp(), limits, node)
        for bad in ("", "  ", "-", "x" * 129, "line\nbreak", "\u202eevil", 7):
            with pytest.raises(CommandRejected, match=rf"malformed request: {name} must be"):
                parse_clip_request(_sign({**body, name: bad}, ops), verifier, now.timestamp(), limits, node)
    # Both go on record with the request, and into the manifest under the node's signature.
    assert request_fields(body)["purpose"] == body["purpose"] and request_fields(body)["operator"] == body["operator"]
    clip = tmp_path / "case-9.mp4"
    clip.write_bytes(b"\x00" * 1000)
    manifest = build_manifest(node_id="pole-test", camera="cam0", request_id="case-9", agency=req.agency,
                              purpose=req.purpose, operator=req.operator, requested=(req.start, req.end),
                              clip_path=clip, clip_range=(req.start_ts, req.end_ts), frames=10, node_key=node)
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    assert verify_clip(clip, tmp_path / "m.json", node.public_key())["purpose"] == body["purpose"]
    (tmp_path / "m.json").write_text(json.dumps({**manifest, "purpose": "another case"}))
    with pytest.raises(VerifyError, match="bad signature"):
        verify_clip(clip, tmp_path / "m.json", node.public_key())
    # The operations-room tool refuses to send a request without them.
    with pytest.raises(SystemExit) as exc:
        main(["ops", "request-clip", "--node", "pole-test", "--key", str(tmp_path / "ops.key"), "--key-id", "ops1",
              "--agency", "City Police", "--upload-url", "https://evidence.example/in", "--last", "5"])
    assert exc.value.code == 2
