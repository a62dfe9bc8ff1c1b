#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bad-input fuzzing of every command handler and of the config loader (hypothesis).

Targets:

* ``cmd/ping``, ``cmd/hotlist``, ``cmd/clip``, ``cmd/config`` and an unknown command name, each through the
  real ``CommandRouter.handle(name, payload)`` with the real handlers wired as ``edge_agent/agent.py`` wires
  them (built directly, no running agent, so thousands of inputs a minute are possible);
* ``config.validate`` on generated dicts, ``config.load`` on generated TOML text and raw bytes.

Inputs: random bytes, malformed and truncated JSON, deep nesting, huge fields, wrong types, path tricks
(``../``, absolute paths, NUL bytes), and bodies that are signed properly, signed with an untrusted key,
with a flipped signature byte, altered after signing, expired, or replayed.

Properties, for every input: no exception escapes, the input is answered within ``--time-box`` seconds,
the reply is a JSON-serialisable dict with ``ok`` true/false and a non-empty ``error`` when false, no
handler fails with "internal error" (the router's catch-all: a handler bug), a forged or replayed command
is never accepted and leaves the hotlists as they were; the config loader returns a Config or raises
ConfigError with a message.

    python scripts/fuzz.py                           # 1000 examples per target
    python scripts/fuzz.py --examples 100000         # the full run (hours on a busy 2-core machine)
    python scripts/fuzz.py --only hotlist --only config_load --examples 5000 --seed 3

tests/test_fuzz.py runs a short version in CI; ``EDGE_FUZZ_EXAMPLES=100000 pytest -m slow tests/test_fuzz.py``
runs the full one through pytest. Exit status 0 when no property failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import queue
import re
import shutil
import string
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from edge_agent.commands.hotlist import HotlistCommand, Hotlists
from edge_agent.commands.remote_config import RUNTIME_KEYS, RemoteConfig, State
from edge_agent.commands.router import CommandRouter
from edge_agent.commands.signing import SignedCommandVerifier, sign_command
from edge_agent.config import Config, ConfigError, load, validate
from edge_agent.core.keys import generate_keypair, load_trusted_keys
from edge_agent.core.sealing import context_for, seal
from edge_agent.core.types import PipelineStats
from edge_agent.footage.audit import AuditLog
from edge_agent.footage.audit_trail import AuditTrail, audit_path
from edge_agent.footage.footage import Footage

COMMAND_TARGETS = ("ping", "hotlist", "clip", "config", "unknown")
CONFIG_TARGETS = ("config_validate", "config_load")
TARGETS = COMMAND_TARGETS + CONFIG_TARGETS
TRUSTED_ID = "ops1"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Hang(Exception):
    """An input was not answered within the time box."""


class PropertyFailure(AssertionError):
    pass


# -- running one input with a time box ------------------------------------------------------------------


class TimeBox:
    """Runs calls on one long-lived worker thread so a hang is detected (and reported) instead of waited on."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.stuck = ""
        self.slowest = 0.0  # seconds, the slowest answered input
        self._jobs: queue.Queue[Callable[[], Any]] = queue.Queue()
        self._results: queue.Queue[tuple[bool, Any]] = queue.Queue()
        threading.Thread(target=self._run, name="fuzz-worker", daemon=True).start()

    def _run(self) -> None:
        while True:
            fn = self._jobs.get()
            try:
                self._results.put((True, fn()))
            except BaseException as exc:
                self._results.put((False, exc))

    def call(self, fn: Callable[[], Any], what: str) -> Any:
        if self.stuck:
            # The worker still owes the hung call's answer: a new call would get that one instead of its own.
            raise Hang(f"{what}: not run, an earlier input hung ({self.stuck})")
        self._jobs.put(fn)
        t0 = time.monotonic()
        try:
            ok, value = self._results.get(timeout=self.seconds)
            self.slowest = max(self.slowest, time.monotonic() - t0)
        except queue.Empty:
            self.stuck = what
            raise Hang(f"{what}: no answer within {self.seconds:.0f} s") from None
        if not ok:
            raise value
        return value


# -- the handlers, wired as in edge_agent/agent.py --------------------------------------------------------


@dataclass
class Harness:
    work: Path
    cfg: Config
    router: CommandRouter
    hotlists: Hotlists
    trusted: Ed25519PrivateKey
    untrusted: Ed25519PrivateKey
    footage: Footage
    remote: RemoteConfig
    verifier: SignedCommandVerifier
    audit: AuditTrail
    restarts: list[float] = field(default_factory=list)

    def reset_after(self, name: str) -> None:
        """Undo what an accepted command leaves behind so the next input meets the same node again."""
        if name == "config" and (self.remote.st.pending is not None or self.remote._restarting):
            self.remote = RemoteConfig(State(self.cfg, Path(self.cfg.data_dir), 30.0), self.verifier,
                                       lambda: self.restarts.append(time.time()), self.audit)
            self.router.register("config", self.remote.handle, signed=True)
        if name == "clip":
            self.footage.clips.discard_staged()
        if name == "hotlist" and sum(self.hotlists.sizes.values()) > 2000:
            # A growing list makes every save slower; a fresh one keeps the run's speed flat.
            for list_id in list(self.hotlists.sizes):
                self.hotlists.apply(list_id, "delete", {})


def build_harness(work: Path) -> Harness:
    keys = work / "keys"
    trusted = generate_keypair(keys / "ops1.key", keys / "ops1.pub")
    untrusted = Ed25519PrivateKey.generate()
    data = work / "data"
    cfg = validate({"node_id": "pole-fuzz", "data_dir": str(data), "alpr": {"enabled": False},
                    "recorder": {"enabled": True}, "security": {"trusted_keys": {TRUSTED_ID: str(keys / "ops1.pub")}}},
                   "fuzz")
    stats = PipelineStats()
    router = CommandRouter(stats)
    router.register("ping", lambda _c: {"node_id": cfg.node_id, "camera": stats.camera_state,
                                        "link": stats.link_state})
    verifier = SignedCommandVerifier(load_trusted_keys(cfg.security.trusted_keys), data / "nonces.sqlite3",
                                     cfg.security.max_command_ttl_s, node_id=cfg.node_id)
    node_key = Ed25519PrivateKey.generate()
    audit = AuditTrail(AuditLog(audit_path(data), node_key), lambda _event: None, cfg.audit.refusal_summary_s)
    router.set_audit(audit)
    footage = Footage(cfg, audit, verifier, node_key)
    # Pretend footage covers all time, so valid requests get past the retention check into the audit/stage path.
    footage.recorder.index.span = lambda: (0.0, 4e9)  # type: ignore[method-assign]
    router.register("clip", footage.clips.handle, signed=True)
    hotlists = Hotlists(data / "hotlists.json", cfg.hotlist.fuzzy)
    router.register("hotlist", HotlistCommand(hotlists, verifier, audit), signed=True)
    h = Harness(work, cfg, router, hotlists, trusted, untrusted, footage,
                RemoteConfig(State(cfg, data, 30.0), verifier, lambda: None, audit), verifier, audit)
    h.remote = RemoteConfig(State(cfg, data, 30.0), verifier, lambda: h.restarts.append(time.time()), audit)
    router.register("config", h.remote.handle, signed=True)
    return h


# -- strategies ---------------------------------------------------------------------------------------------

PATH_TRICKS = ["../../etc/passwd", "/etc/shadow", "..", ".", "a/../../b", "nul\x00byte", "C:\\Windows\\system32",
               "~root/.ssh/id_rsa", "file:///etc/passwd", "%2e%2e%2f", "\u202eexe.txt", "con", "a" * 300,
               "x" * 5000, "", " ", "\n", "$(reboot)", "'; DROP TABLE nonces; --", "{{7*7}}", "r1\n", "stolen\n",
               "cam0\n"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.sampled_from(PATH_TRICKS),
)
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=5),
                                                            st.dictionaries(st.text(max_size=12), kids, max_size=5)),
                           max_leaves=20)
huge_strings = st.builds(lambda c, n: c * n, st.sampled_from(["A", "é", "0", "/", "\x00", "🚗"]),
                         st.sampled_from([1000, 70_000, 200_000]))
nasty = st.one_of(json_values, huge_strings, st.sampled_from(PATH_TRICKS),
                  st.builds(lambda d: _nest(d), st.integers(min_value=10, max_value=400)))


def _nest(depth: int) -> Any:
    v: Any = 1
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


def _iso(delta_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly valid values (so inputs get deep into the handler), sometimes anything at all."""
    return st.one_of(valid, valid, valid, nasty)


plates = st.one_of(st.from_regex(r"\A[A-Z0-9 -]{2,12}\Z"),
                   st.fixed_dictionaries({"text": st.from_regex(r"\A[A-Z0-9]{2,12}\Z")},
                                         optional={"reason": st.text(max_size=60)}))
# Values cmd/config must accept, so that the accept, persist and restart path is exercised too.
VALID_RUNTIME: dict[str, st.SearchStrategy[Any]] = {
    "motion.enabled": st.booleans(), "motion.threshold": st.integers(1, 255), "motion.min_area": st.floats(0.001, 1),
    "motion.blur": st.sampled_from([1, 3, 5, 31]), "motion.alpha": st.floats(0.01, 1), "log.level":
    st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR"]), "alpr.min_confidence": st.floats(0, 1),
    "health.interval_s": st.floats(1, 3600), "upload.max_kbps": st.floats(1, 10_000),
    "formats.enabled": st.lists(st.sampled_from(["any", "IT"]), min_size=1, max_size=2),
    "motion.masks": st.lists(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=3, max_size=5),
                             max_size=2),
}
Wrap = Callable[[st.SearchStrategy[Any]], st.SearchStrategy[Any]]


def _bodies(target: str, m: Wrap, extra: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """The body of a ``target`` command whose every field goes through ``m`` (valid as is, or sometimes nasty)."""
    rid = m(st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z"))
    if target in ("ping", "unknown"):
        return st.fixed_dictionaries({"request_id": rid}, optional=extra)
    if target == "hotlist":
        return st.fixed_dictionaries(
            {"request_id": rid, "list_id": m(st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z")),
             "action": m(st.sampled_from(["replace", "add", "remove", "delete"]))},
            optional={"plates": m(st.lists(m(plates), max_size=8)), **extra})
    if target == "clip":
        clean = m is _as_is  # a clean body is one the node accepts when it is signed properly (token sealed)
        cameras = ["cam0"] if clean else ["cam0", "cam1", "../cam0", "/dev/video0"]
        agencies = ["City Police", "Agency/Unit 7", "O'Brien & Co."] + ([] if clean else ["../../x", "a\x00b"])
        purposes = ["Proc. 1234/2026", "complaint #77: hit and run", "Denuncia n. 5/2026 (Procura di Milano)"] + (
            [] if clean else ["", " ", "-", "x" * 129, "case\n42", "\u202eevil", "a\x00b"])
        operators = ["Isp. M. Rossi, matr. 4711", "m.rossi@polizia.example", "Agente Scelto Bianchi"] + (
            [] if clean else ["", "__", "op\tx", "y" * 200])
        urls = ["https://evidence.example/in/case", "https://user:pw@h.example/p?t=1",
                "https://h.example/../../etc/passwd"] + ([] if clean else [
                "http://evidence.example/x", "ftp://h/x", "https:///nohost", "file:///etc/passwd"])
        spans = st.tuples(st.floats(10, 7200), st.floats(1, 9.9) if clean else st.floats(-100, 1200))
        return spans.flatmap(lambda span: st.fixed_dictionaries(
            {"request_id": rid, "camera": m(st.sampled_from(cameras)),
             "start": m(st.just(_iso(-span[0]))), "end": m(st.just(_iso(-span[0] + span[1]))),
             "agency": m(st.sampled_from(agencies)), "purpose": m(st.sampled_from(purposes)),
             "operator": m(st.sampled_from(operators)), "upload_url": m(st.sampled_from(urls)),
             "upload_token": m(st.text(min_size=1, max_size=40))},
            optional=extra))
    good_set = st.fixed_dictionaries({}, optional=VALID_RUNTIME)
    bad_set = st.dictionaries(st.one_of(st.sampled_from(RUNTIME_KEYS), st.sampled_from(PATH_TRICKS),
                                        st.just("mqtt.host")), nasty, max_size=4)
    if m is _as_is:
        return st.fixed_dictionaries({"request_id": rid, "set": good_set.filter(bool)},
                                     optional={"reset": st.lists(st.sampled_from(RUNTIME_KEYS), max_size=2),
                                               "dry_run": st.booleans()})
    return st.fixed_dictionaries(
        {"request_id": rid},
        optional={"set": m(good_set | bad_set),
                  "reset": m(st.lists(st.sampled_from([*RUNTIME_KEYS, "security.trusted_keys", "../x"]), max_size=3)),
                  "dry_run": m(st.booleans()), **extra})


def _as_is(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return s


# Half the bodies are well-formed (so inputs get past parsing into verification, validation and persistence),
# half have nasty values in any field and unexpected extra fields.
BODIES = {t: st.one_of(_bodies(t, _as_is, {}), _bodies(t, maybe, {"evil": nasty})) for t in COMMAND_TARGETS}
SIGNING = ("none", "trusted", "trusted", "trusted", "trusted", "untrusted", "unknown_key_id", "flipped", "altered",
           "expired", "too_far", "bad_nonce", "replay", "garbage_sig", "wrong_node", "wrong_command", "unbound")
FORGED = {"untrusted", "unknown_key_id", "flipped", "altered", "expired", "too_far", "bad_nonce", "garbage_sig",
          "wrong_node", "wrong_command", "unbound"}


def seal_token(h: Harness, body: dict[str, Any]) -> dict[str, Any]:
    """A clip body with its token sealed to this node's key when the token's length is even (half of them,
    so inputs reach acceptance); the others keep it in clear, which the node refuses
    (clips.require_sealed_token)."""
    token, rid = body.get("upload_token"), body.get("request_id")
    if not (isinstance(token, str) and isinstance(rid, str) and len(token) % 2 == 0):
        return body
    try:
        sealed = seal(token, h.footage.clips.node_key.public_key(), context_for(h.cfg.node_id, rid))
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8: leave the token in clear
        return body
    return {**{k: v for k, v in body.items() if k != "upload_token"}, "upload_token_sealed": sealed}


def sign(h: Harness, body: dict[str, Any], mode: str, command: str = "") -> dict[str, Any]:
    """``body`` signed as ``mode`` says, for this node and ``command`` unless the mode is about getting those wrong."""
    node = "pole-elsewhere" if mode == "wrong_node" else h.cfg.node_id
    name = "hotlist" if mode == "wrong_command" and command != "hotlist" else ("config" if mode == "wrong_command"
                                                                              else command)
    bound = {"node_id": node, "command": name}
    if mode == "none":
        return body
    if mode in ("trusted", "replay", "flipped", "altered", "wrong_node", "wrong_command"):
        out = sign_command(body, h.trusted, TRUSTED_ID, **bound)
    elif mode == "unbound":
        out = sign_command(body, h.trusted, TRUSTED_ID)
    elif mode == "untrusted":
        out = sign_command(body, h.untrusted, TRUSTED_ID, **bound)
    elif mode == "unknown_key_id":
        out = sign_command(body, h.untrusted, "intruder", **bound)
    elif mode == "expired":
        out = sign_command(body, h.trusted, TRUSTED_ID, now=datetime.now(UTC) - timedelta(hours=2), **bound)
    elif mode == "too_far":
        out = sign_command(body, h.trusted, TRUSTED_ID, ttl_s=7 * 86400, **bound)
    elif mode == "bad_nonce":
        out = sign_command({**body, "nonce": "short"}, h.trusted, TRUSTED_ID, **bound)
    else:  # garbage_sig
        out = {**sign_command(body, h.trusted, TRUSTED_ID, **bound), "signature": "!!not base64!!"}
    if mode == "flipped":
        raw = bytearray(base64.b64decode(out["signature"]))
        raw[len(raw) // 2] ^= 0x01
        out["signature"] = base64.b64encode(bytes(raw)).decode()
    elif mode == "altered":
        out["request_id"] = str(out.get("request_id"))[:60] + "-x"
    return out


def encode(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


MUTATIONS = ("none", "none", "none", "truncate", "flip_byte", "bom", "latin1", "pad_huge", "not_object")
BREAKING = {"truncate", "flip_byte", "latin1", "pad_huge", "not_object"}


def mutate(payload: bytes, how: str, at: int) -> bytes:
    if how == "truncate":
        return payload[: at % max(1, len(payload))]
    if how == "flip_byte" and payload:
        i = at % len(payload)
        return payload[:i] + bytes([payload[i] ^ 0x80]) + payload[i + 1:]
    if how == "bom":
        return b"\xef\xbb\xbf" + payload
    if how == "latin1":
        return payload + b"\xff\xfe"
    if how == "pad_huge":
        return payload[:-1] + b', "pad": "' + b"A" * 70_000 + b'"}' if payload.endswith(b"}") else payload * 1000
    if how == "not_object":
        return b"[" + payload + b"]"
    return payload


raw_payloads = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet=string.printable, max_size=200).map(str.encode),
    st.integers(min_value=1, max_value=200_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"", b"null", b"true", b"1e999999", b'"str"', b"NaN", b"{}", b'{"request_id": null}',
                     b'{"request_id": "r1", "request_id": "r2"}', b'{"request_id": "\\ud800"}', b"\x00" * 10]),
)


# -- properties ---------------------------------------------------------------------------------------------


def check_reply(name: str, out: Any) -> dict[str, Any]:
    if not (isinstance(out, tuple) and len(out) == 2):
        raise PropertyFailure(f"handle() returned {type(out).__name__}, not (request_id, reply)")
    rid, reply = out
    if rid is not None and not (isinstance(rid, str) and _REQUEST_ID.match(rid)):
        raise PropertyFailure(f"unusable request_id in the answer: {rid!r:.80}")
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise PropertyFailure(f"reply is not a dict with a boolean ok: {reply!r:.200}")
    if reply.get("command") != name[:64]:
        raise PropertyFailure(f"reply names command {reply.get('command')!r:.80}, not {name[:64]!r:.80}")
    if not reply["ok"]:
        err = reply.get("error")
        if not isinstance(err, str) or not err.strip():
            raise PropertyFailure(f"refusal without a reason: {reply!r:.200}")
        if err.startswith("internal error"):
            raise PropertyFailure("a handler raised (the router answered 'internal error'); see the log above")
    try:
        json.dumps(reply)
    except (TypeError, ValueError) as exc:
        raise PropertyFailure(f"reply cannot be published as JSON: {exc}") from None
    return reply


@dataclass
class Counter:
    target: str
    total: int
    n: int = 0
    accepted: int = 0
    started: float = field(default_factory=time.monotonic)
    next_report: float = field(default_factory=lambda: time.monotonic() + 10.0)

    def tick(self, ok: bool = False) -> None:
        self.n += 1
        self.accepted += ok
        now = time.monotonic()
        if now >= self.next_report:
            self.next_report = now + 30.0
            rate = self.n / max(now - self.started, 1e-9)
            print(f"[{time.strftime('%H:%M:%S')}] {self.target}: {self.n}/{self.total} examples "
                  f"({rate:.0f}/s, {self.accepted} accepted)", file=sys.stderr, flush=True)


def command_test(h: Harness, box: TimeBox, target: str, c: Counter) -> Callable[..., None]:
    body_strategy = BODIES[target]
    names = st.one_of(st.sampled_from(["reboot", "shell", "../../cmd/ping", "/etc/passwd", "ping\x00", "", "x" * 500,
                                       "hotlist/../config", "CONFIG", "ping "]), st.text(max_size=80))

    @given(kind=st.sampled_from(["body", "body", "body", "body", "raw"]), body=body_strategy,
           mode=st.sampled_from(SIGNING), how=st.sampled_from(MUTATIONS), at=st.integers(0, 10_000),
           raw=raw_payloads, name=names)
    def run(kind: str, body: dict[str, Any], mode: str, how: str, at: int, raw: bytes, name: str) -> None:
        cmd = name if target == "unknown" else target
        if target == "unknown" and cmd in h.router._handlers:
            cmd = cmd + "?"
        if kind == "raw":
            payload = raw
        else:
            if target == "clip":
                body = seal_token(h, body)
            try:
                signed = sign(h, body, mode, cmd)
            except ValueError:
                # NaN/Infinity have no canonical JSON, so no signer can sign them: send the body unsigned.
                signed, mode = body, "none"
            if mode == "replay":
                how = "none"
            payload = mutate(encode(signed), how, at)
        before = h.hotlists.sizes
        reply = check_reply(cmd, box.call(lambda: h.router.handle(cmd, payload), f"cmd/{cmd}"))
        # A BOM or a trailing byte-order change leaves the JSON (and so the signature) intact: not forged.
        forged = kind == "body" and (mode in FORGED or (mode != "none" and how in BREAKING))
        if forged and reply["ok"] and target in ("hotlist", "clip", "config"):
            raise PropertyFailure(f"a forged command ({mode}, {how}) was accepted: {reply!r:.200}")
        if forged and target == "hotlist" and h.hotlists.sizes != before:
            raise PropertyFailure(f"a forged cmd/hotlist ({mode}) changed the lists")
        if kind == "body" and mode == "replay" and target in ("hotlist", "clip", "config"):
            h.reset_after(cmd)
            again = check_reply(cmd, box.call(lambda: h.router.handle(cmd, payload), f"cmd/{cmd} replay"))
            if again["ok"]:
                raise PropertyFailure(f"a replayed cmd/{cmd} was accepted twice: {again!r:.200}")
            if reply["ok"] and not again["error"].startswith("replayed nonce"):
                raise PropertyFailure(f"replay refused for the wrong reason: {again['error']!r:.200}")
        h.reset_after(cmd)
        c.tick(reply["ok"])

    return run


# -- config loader ------------------------------------------------------------------------------------------


def _sections() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, f in Config.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            out[name] = list(ann.model_fields)
    return out


SECTIONS = _sections()
config_scalars = st.one_of(scalars, st.sampled_from(["demo", "DEBUG", "IT", "any", "libx264", "/dev/null", "/tmp",
                                                     "/nonexistent/x.pem", "rtsp://u:p@h/s"]),
                           st.floats(-10, 10_000), st.integers(-10, 100_000))
config_values = st.one_of(config_scalars, config_scalars, nasty,
                          st.lists(st.lists(st.tuples(st.floats(-1, 2), st.floats(-1, 2)), max_size=4), max_size=3))


@st.composite
def config_dicts(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        keys = draw(st.lists(st.one_of(st.sampled_from(SECTIONS[section]), st.text(max_size=10)), max_size=4))
        raw[section] = {k: draw(config_values) for k in keys}
    if draw(st.booleans()):
        raw[draw(st.sampled_from(["node_id", "data_dir", "bogus", *PATH_TRICKS[:4]]))] = draw(config_values)
    if draw(st.integers(0, 9)) == 0:
        raw["mqtt"] = draw(nasty)  # a section that is not a table
    return raw


def _toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if v is None:
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return json.dumps(v)


def to_toml(raw: dict[str, Any]) -> str:
    lines = []
    for k, v in raw.items():
        if not isinstance(v, dict):
            lines.append(f"{json.dumps(k)} = {_toml_value(v)}")
    for k, v in raw.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(k)}]")
            lines.extend(f"{json.dumps(str(kk))} = {_toml_value(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"


toml_texts = st.one_of(
    config_dicts().map(to_toml),
    st.tuples(config_dicts().map(to_toml), st.integers(0, 2000)).map(lambda t: t[0][: t[1]]),
    st.text(max_size=300),
    st.text(alphabet="[]{}=\"',.#\n abc123", max_size=300),
    st.integers(1, 100_000).map(lambda n: "a = " + "[" * n + "]" * n),
    st.integers(1, 100_000).map(lambda n: "a = " + "{b = " * n + "1" + "}" * n),
    st.integers(1, 5000).map(lambda n: "[" + ".".join(["t"] * n) + "]\n"),
)
toml_payloads = st.one_of(toml_texts.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=300))


def check_config(out: Any) -> None:
    kind, value = out
    if kind == "ok":
        if not isinstance(value, Config):
            raise PropertyFailure(f"validate returned {type(value).__name__}, not Config")
    elif kind == "error":
        if not str(value).strip():
            raise PropertyFailure("ConfigError without a message")
    else:
        raise PropertyFailure(f"the config loader raised {type(value).__name__}: {value!s:.300}")


def _classify(fn: Callable[[], Config]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except ConfigError as exc:
        return "error", exc
    except Exception as exc:
        return "escaped", exc


def config_validate_test(box: TimeBox, c: Counter) -> Callable[..., None]:
    @given(raw=config_dicts())
    def run(raw: dict[str, Any]) -> None:
        out = box.call(lambda: _classify(lambda: validate(raw, "fuzz")), "config.validate")
        check_config(out)
        c.tick(out[0] == "ok")

    return run


def config_load_test(work: Path, box: TimeBox, c: Counter) -> Callable[..., None]:
    path = work / "fuzz.toml"

    @given(data=toml_payloads)
    def run(data: bytes) -> None:
        path.write_bytes(data)
        out = box.call(lambda: _classify(lambda: load(path)), "config.load")
        check_config(out)
        c.tick(out[0] == "ok")

    return run


# -- driver -------------------------------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    examples: int
    accepted: int
    seconds: float
    failure: str = ""
    slowest_s: float = 0.0


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    # tmpfs when there is one: every accepted command fsyncs (nonces, hotlists, audit log), a disk makes 1e5 slow.
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="edge-fuzz-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_target(target: str, examples: int, rng_seed: int, time_box_s: float, work: Path) -> Result:
    box = TimeBox(time_box_s)
    c = Counter(target, examples)
    if target in COMMAND_TARGETS:
        h = build_harness(work / target)
        test = command_test(h, box, target, c)
    elif target == "config_validate":
        test = config_validate_test(box, c)
    else:
        (work / target).mkdir(parents=True, exist_ok=True)
        test = config_load_test(work / target, box, c)
    runner = settings(max_examples=examples, deadline=None, database=None, derandomize=False, print_blob=True,
                      phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))(test)
    runner = seed(rng_seed)(runner)
    t0 = time.monotonic()
    failure = ""
    try:
        runner()
    except Hang as exc:
        failure = f"hang: {exc}"
    except Exception as exc:
        # Hypothesis attaches each falsifying example to its exception as a note: print them all.
        traceback.print_exception(exc, file=sys.stderr)
        failure = f"{type(exc).__name__}: {exc}"
    return Result(target, c.n, c.accepted, time.monotonic() - t0, failure, round(box.slowest, 3))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=1000, help="generated inputs per target (default 1000)")
    ap.add_argument("--only", choices=TARGETS, action="append", help="run only these targets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-box", type=float, default=30.0, help="seconds an input may take before it is a hang")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = ap.parse_args(argv)
    # Every refusal is logged at WARNING by the router; a hundred thousand of them would drown the summary.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    results = []
    with scratch_dir() as work:
        for target in args.only or TARGETS:
            print(f"[{time.strftime('%H:%M:%S')}] {target}: {args.examples} examples", file=sys.stderr, flush=True)
            r = run_target(target, args.examples, args.seed, args.time_box, work)
            results.append(r)
            print(f"[{time.strftime('%H:%M:%S')}] {target}: {r.examples} run, {r.accepted} accepted, "
                  f"{r.seconds:.0f} s, slowest input {r.slowest_s:.2f} s, "
                  f"{'FAILED: ' + r.failure if r.failure else 'ok'}", file=sys.stderr, flush=True)
    print(f"{'target':<16} {'examples':>9} {'accepted':>9} {'seconds':>8} {'per s':>7} {'slowest':>8}  result")
    for r in results:
        rate = r.examples / max(r.seconds, 1e-9)
        print(f"{r.target:<16} {r.examples:>9} {r.accepted:>9} {r.seconds:>8.1f} {rate:>7.0f} {r.slowest_s:>7.2f}s"
              f"  {'FAIL ' + r.failure[:200] if r.failure else 'ok'}")
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
    return 1 if any(r.failure for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
