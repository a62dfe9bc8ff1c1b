"""``edge-agent doctor``: is this pole ready? One line per check: OK / WARN / FAIL, and the fix.

Each check is a function of the config returning a :class:`Result`; probes that depend on the
machine (the clock, systemd) are injectable so tests can simulate a broken pole. Exit status 1 when
any check FAILs, so install scripts and technicians' checklists can rely on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_agent.config import DEFAULT_CONFIG, Config, ConfigError, load, resolve_config
from edge_agent.core.clock import ClockProbe, command_output, probe_clock

Status = Literal["OK", "WARN", "FAIL", "SKIP"]
TEST_PLATE = "AB123CD"
UNIT = "edge-agent.service"


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4} {self.check:<9} {self.message}"
        return f"{text} -> fix: {self.fix}" if self.fix and self.status != "OK" else text


# -- clock ----------------------------------------------------------------------------------------


def check_clock(probe: ClockProbe) -> Result:
    s = probe()
    if s.synced is True:
        return Result("clock", "OK", f"synchronised ({s.source})")
    if s.synced is False:
        return Result("clock", "FAIL", f"not synchronised ({s.source}{', ' + s.detail if s.detail else ''}): "
                      "event and evidence timestamps cannot be trusted",
                      "check network access to the NTP servers (timedatectl timesync-status; chronyc sources), "
                      "then wait for sync")
    return Result("clock", "WARN", f"synchronisation state unknown: {s.detail or s.source}",
                  "install and enable systemd-timesyncd or chrony (scripts/install.sh does)")


# -- systemd ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitState:
    systemd: bool
    enabled: str = ""
    active: str = ""


def probe_unit() -> UnitState:
    if not Path("/run/systemd/system").is_dir() or not shutil.which("systemctl"):
        return UnitState(False)
    enabled = (command_output(["systemctl", "is-enabled", UNIT]) or "").strip() or "not-found"
    try:
        active = subprocess.run(["systemctl", "is-active", UNIT], capture_output=True, text=True, timeout=3,
                                check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        active = "unknown"
    return UnitState(True, enabled, active)


def check_unit(probe: Callable[[], UnitState]) -> Result:
    u = probe()
    if not u.systemd:
        return Result("systemd", "WARN", "systemd is not running here (container or chroot?): unit state not checked",
                      "on a pole the agent must run as the edge-agent service (scripts/install.sh)")
    if u.enabled not in ("enabled", "enabled-runtime"):
        return Result("systemd", "FAIL", f"{UNIT} is {u.enabled}: it will not start at boot",
                      f"systemctl enable --now {UNIT}")
    if u.active == "active":
        return Result("systemd", "OK", f"{UNIT} enabled and active")
    if u.active == "failed":
        return Result("systemd", "FAIL", f"{UNIT} has failed", f"journalctl -u {UNIT} -n 50; then "
                      f"systemctl restart {UNIT}")
    return Result("systemd", "WARN", f"{UNIT} enabled but {u.active}", f"systemctl start {UNIT}")


# -- the checks that need the config ----------------------------------------------------------------


def check_keys(cfg: Config) -> Result:
    from edge_agent.core.keys import node_identity_problem, replaceable_problem
    from edge_agent.field.provision import (
        DEFAULT_NODE_KEY,
        node_identity_path,
        node_key_path,
        permission_problem,
        secret_files,
    )

    files = secret_files(cfg)
    missing = [f"{k} ({p})" for k, p in files if not p.exists()]
    if missing:
        return Result("keys", "FAIL", f"missing: {', '.join(missing)}", "edge-agent provision, or fix the paths")
    # Every refusal the agent would make at start, in one line: fixing one must not uncover the next.
    problems: list[str] = []
    fixes: list[str] = []
    bad = [(k, p, why) for k, p in files if (why := permission_problem(p)) is not None]
    if bad:
        problems += [f"{k}: {why.split('; fix:')[0]}" for k, _p, why in bad]
        fixes.append("chmod 600 " + " ".join(str(p) for _k, p, _w in bad))
    # Config validation already refuses these; checked again for a config validated before the files changed.
    replaceable = [(k, p, why) for k, p in cfg.security.trusted_keys.items()
                   if (why := replaceable_problem(p)) is not None]
    if replaceable:
        problems += [f"security.trusted_keys.{k}: {why.split('; fix:')[0]}" for k, _p, why in replaceable]
        fixes += [why.split("; fix: ")[-1] for _k, _p, why in replaceable]
    lost = node_identity_problem(node_key_path(cfg), node_identity_path(cfg))
    if lost is not None:
        problems.append(f"node identity: {lost.split('; refusing')[0]}")  # the fix below says the rest
        fixes.append("restore the node signing key from backup; only if the identity must change, delete "
                     f"{node_identity_path(cfg)} and register the new public key with the operations room")
    if problems:
        return Result("keys", "FAIL", "; ".join(problems), "; ".join(fixes) + " (the agent refuses to start)")
    configured = [f for f in files if f[0] != DEFAULT_NODE_KEY]
    if not configured:
        return Result("keys", "WARN", "no key or password file configured: the node has no credentials",
                      "edge-agent provision --node-id ID, then set mqtt.tls.key_file/cert_file (docs/deployment.md)")
    return Result("keys", "OK", f"{len(files)} secret file(s), none readable by other users")


def check_camera(cfg: Config, seconds: float = 2.0) -> Result:
    from edge_agent.core.redact import redact
    from edge_agent.sources import SourceError, make_source

    cam = cfg.camera
    name = redact(cam.source)
    try:
        src = make_source(cfg)
        src.open()
    except (SourceError, OSError, ImportError, RuntimeError, ValueError) as exc:
        return Result("camera", "FAIL", f"{name}: cannot open: {exc}", _camera_fix(cam.source))
    frames = 0
    size: tuple[int, int] | None = None
    t0 = time.monotonic()
    first: float | None = None
    try:
        while time.monotonic() - t0 < seconds + cam.read_timeout_s:
            frame = src.read()
            h, w = frame.image.shape[:2]
            size = (w, h)
            if first is None:
                first = time.monotonic()  # measure the rate from the first frame: opening may be slow
            frames += 1
            if time.monotonic() - first >= seconds:
                break
    except (SourceError, OSError, RuntimeError) as exc:
        if frames == 0:
            return Result("camera", "FAIL", f"{name}: opened but delivered no frame: {exc}", _camera_fix(cam.source))
    finally:
        with contextlib.suppress(Exception):
            src.close()
    if size is None or first is None:
        return Result("camera", "FAIL", f"{name}: no frame within {cam.read_timeout_s:g} s", _camera_fix(cam.source))
    elapsed = max(time.monotonic() - first, 1e-3)
    fps = (frames - 1) / elapsed if frames > 1 else 0.0
    if size != (cam.width, cam.height):
        return Result("camera", "WARN", f"{name}: frames are {size[0]}x{size[1]}, config asks "
                      f"{cam.width}x{cam.height}", "set camera.width/height to a mode the camera supports")
    if fps < 0.8 * cam.fps:
        return Result("camera", "WARN", f"{name}: {fps:.1f} fps, config asks {cam.fps:g}",
                      "lower camera.fps, or check the camera's own frame-rate setting and the network")
    return Result("camera", "OK", f"{name}: {size[0]}x{size[1]} at {fps:.1f} fps ({frames} frames)")


def _camera_fix(source: str) -> str:
    if source == "picamera2":
        return "check the ribbon cable, 'rpicam-hello --list-cameras', and that python3-picamera2 is installed"
    if "://" in source:
        return "check camera.source URL, credentials and network (ffprobe the URL from the pole)"
    return "check camera.source (device or file exists, the edge-agent user is in the video group)"


def test_frame() -> Any:
    """The built-in test plate, pasted on a grey 1280x720 frame, as a camera would see it."""
    import cv2
    import numpy as np

    from edge_agent.sources.plate_render import render_plate

    frame = np.full((720, 1280, 3), 128, np.uint8)
    plate = cv2.resize(render_plate(TEST_PLATE), (260, 55), interpolation=cv2.INTER_AREA)
    frame[400:455, 510:770] = plate
    return frame


def check_models(cfg: Config) -> Result:
    if not cfg.alpr.enabled:
        return Result("models", "WARN", "alpr.enabled = false: plates are not read", "set alpr.enabled = true")
    try:
        from edge_agent.pipeline.alpr import ModelError, PlateReader
    except ImportError as exc:
        return Result("models", "FAIL", f"plate reader unavailable: {exc}",
                      "reinstall the package with its dependencies (scripts/install.sh)")
    try:
        reader = PlateReader(cfg.alpr.detector_model, cfg.alpr.ocr_model, cfg.alpr.threads, formats=cfg.formats.enabled)
    except (ModelError, OSError, ValueError, RuntimeError) as exc:
        return Result("models", "FAIL", f"cannot load the plate models: {exc}",
                      "set alpr.detector_model/ocr_model to existing model files, or reinstall the package "
                      "(the models ship in edge_agent/models/)")
    versions = ", ".join(f"{k} {v}" for k, v in reader.model_versions.items())
    try:
        reads = reader.read(test_frame())
    except Exception as exc:
        return Result("models", "FAIL", f"models loaded ({versions}) but failed on the test plate: {exc}",
                      "reinstall the package; report the error with the model versions")
    texts = [r.text for r in reads]
    if TEST_PLATE not in texts:
        got = ", ".join(texts) or "nothing"
        return Result("models", "FAIL", f"models loaded ({versions}) but read {got} on test plate {TEST_PLATE}",
                      "reinstall the package (model files damaged?) or use the shipped models")
    return Result("models", "OK", f"{versions}; test plate {TEST_PLATE} read")


@dataclass
class _Mqtt:
    client: Any
    v5: bool
    connected: threading.Event = field(default_factory=threading.Event)
    refused: str = ""
    session_present: bool = False
    subscribed: threading.Event = field(default_factory=threading.Event)
    suback: list[Any] = field(default_factory=list)  # paho ReasonCodes
    published: threading.Event = field(default_factory=threading.Event)
    puback: Any = None  # paho ReasonCode
    lost: str = ""  # why the connection closed, once it has


# How long the broker keeps the doctor's session should the doctor die before it ends it (MQTT 5).
_DOCTOR_SESSION_S = 60


def _reason(rc: Any) -> str:
    value = getattr(rc, "value", None)
    return f"{rc} (0x{value:02X})" if isinstance(value, int) else str(rc)


def _mqtt_client(cfg: Config) -> _Mqtt:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_agent.link.mqtt import apply_credentials

    m = cfg.mqtt
    # Never the agent's own client id: that would take over its persistent session. A broker that ties
    # client ids to the certificate (config/mosquitto/mosquitto.conf) does it anyway: see _end_session.
    cid = f"edge-agent-{cfg.node_id}-doctor-{secrets.token_hex(3)}"
    if m.protocol == "5":
        # manual_ack: a command delivered to this connection is never acknowledged, so when the doctor has
        # taken over the agent's session the broker delivers it again to the agent.
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5, manual_ack=True)
    else:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=True, protocol=mqtt.MQTTv311)
    st = _Mqtt(c, m.protocol == "5")
    apply_credentials(c, m)

    def on_connect(_c: Any, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            st.refused = str(rc)
        st.session_present = bool(getattr(flags, "session_present", False))
        st.connected.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        st.lost = _reason(rc)

    def on_subscribe(_c: Any, _u: Any, _mid: int, rcs: list[Any], _p: Any) -> None:
        st.suback = list(rcs)
        st.subscribed.set()

    def on_publish(_c: Any, _u: Any, _mid: int, rc: Any, _p: Any) -> None:
        st.puback = rc
        st.published.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    c.on_subscribe = on_subscribe
    c.on_publish = on_publish
    return st


def _connect_kwargs(cfg: Config) -> dict[str, Any]:
    if cfg.mqtt.protocol != "5":
        return {}
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = _DOCTOR_SESSION_S
    # clean_start=False: where the broker makes this the agent's own client id, a clean start would wipe
    # the agent's session (its subscription and the commands queued for it).
    return {"clean_start": False, "properties": props}


def _end_session(cfg: Config, st: _Mqtt) -> None:
    """Disconnects, leaving the agent's session as it was (MQTT 5), or no session at all."""
    if not st.v5:
        st.client.disconnect()
        return
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    # A session that was already there is the agent's (the broker tied our id to its certificate): give it
    # back its own expiry. Otherwise the session is the doctor's alone and ends now.
    props.SessionExpiryInterval = cfg.mqtt.session_expiry_s if st.session_present else 0
    st.client.disconnect(properties=props)


def _wait(st: _Mqtt, ev: threading.Event, timeout: float) -> bool:
    """True once ``ev`` is set; False on timeout or when the connection closed first."""
    deadline = time.monotonic() + timeout
    while not ev.is_set():
        if st.lost or time.monotonic() >= deadline:
            return ev.is_set()
        ev.wait(0.05)
    return True


def check_mqtt(cfg: Config, timeout: float = 5.0) -> list[Result]:
    """Two results: the broker connection (TLS, credentials) and this node's publish/subscribe rights."""
    m = cfg.mqtt
    where = f"{m.host}:{m.port}"
    skipped = Result("mqtt-rt", "FAIL", "publish/subscribe rights not checked: no broker connection",
                     "fix the broker line first")
    try:
        st = _mqtt_client(cfg)
    except (OSError, ssl.SSLError, ValueError) as exc:
        return [Result("broker", "FAIL", f"cannot set up TLS/credentials: {exc}",
                       "check mqtt.tls.ca_file/cert_file/key_file are PEM files and the key matches the certificate"),
                skipped]
    c = st.client
    try:
        c.connect(m.host, m.port, keepalive=max(5, min(m.keepalive_s, 30)), **_connect_kwargs(cfg))
    except ssl.SSLCertVerificationError as exc:
        return [Result("broker", "FAIL", f"{where}: TLS certificate not trusted: {exc.verify_message}",
                       "mqtt.tls.ca_file must be the CA that signed the broker's certificate, and mqtt.host "
                       "the name in it"), skipped]
    except ssl.SSLError as exc:
        return [Result("broker", "FAIL", f"{where}: TLS handshake failed: {exc.reason or exc}",
                       "check the port is the broker's TLS port and the client certificate is signed by its CA"),
                skipped]
    except ConnectionRefusedError:
        return [Result("broker", "FAIL", f"{where}: connection refused",
                       "check mqtt.host/mqtt.port and that the broker is running"), skipped]
    except (TimeoutError, OSError) as exc:
        return [Result("broker", "FAIL", f"{where}: unreachable: {getattr(exc, 'strerror', None) or exc}",
                       "check the network route/firewall to the broker and mqtt.host"), skipped]
    c.loop_start()
    try:
        if not _wait(st, st.connected, timeout):
            if st.lost:
                return [Result("broker", "FAIL", f"{where}: the broker closed the connection: {st.lost}",
                               "check that the broker accepts this node's certificate (the CA in its cafile, "
                               "not revoked) and the port is an MQTT listener"), skipped]
            return [Result("broker", "FAIL", f"{where}: no answer to CONNECT within {timeout:g} s",
                           "check the port is an MQTT listener (TLS port needs [mqtt.tls]) and the firewall"), skipped]
        if st.refused:
            return [Result("broker", "FAIL", f"{where}: broker refused the connection: {st.refused}",
                           "check mqtt.username, the password file and that the broker knows this node's "
                           "certificate"), skipped]
        how = "TLS" if m.tls is not None else "plain TCP"
        auth = f", user {m.username}" if m.username else ""
        cert = ", client certificate" if m.tls is not None and m.tls.cert_file is not None else ""
        if m.tls is None:
            broker = Result("broker", "WARN", f"{where}: connected over plain TCP{auth}, MQTT {m.protocol}: "
                            "traffic is not encrypted", "configure [mqtt.tls] (docs/deployment.md)")
        elif m.tls.insecure_skip_hostname_check:
            broker = Result("broker", "WARN", f"{where}: connected over TLS without checking that the broker's "
                            f"certificate names {m.host} (the chain is still verified)",
                            "set mqtt.tls.insecure_skip_hostname_check = false")
        else:
            broker = Result("broker", "OK", f"{where}: connected ({how}{cert}{auth}, MQTT {m.protocol})")
        return [broker, _rights(cfg, st, timeout)]
    finally:
        with contextlib.suppress(Exception):
            _end_session(cfg, st)
        c.loop_stop()


def _certificate_cn(cfg: Config) -> str | None:
    t = cfg.mqtt.tls
    if t is None or t.cert_file is None:
        return None
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        names = x509.load_pem_x509_certificate(t.cert_file.read_bytes()).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME)
    except (OSError, ValueError):
        return None
    return str(names[0].value) if names else None


def _rights(cfg: Config, st: _Mqtt, timeout: float) -> Result:
    """Proves with the broker's own answers (MQTT 5 reason codes) what this node needs: to read its
    ``cmd/`` topics and to write under its base. Not a round trip: a least-privilege ACL rightly
    forbids a node to read what it writes."""
    from edge_agent.link.mqtt import Topics

    m = cfg.mqtt
    topics = Topics(m.prefix, cfg.node_id)
    cn = _certificate_cn(cfg)
    user = cn or m.username or "(anonymous)"
    who = (f"; the client certificate's CN is {cn!r} but node_id is {cfg.node_id!r}: a broker with "
           f"use_identity_as_username knows this node as {cn!r}: set node_id = {cn!r} or have the operations "
           f"room sign a certificate for {cfg.node_id!r}" if cn is not None and cn != cfg.node_id else "")

    def closed() -> str:
        return f" (the broker closed the connection: {st.lost})" if st.lost else ""

    read_fix = f"the broker's ACL must let user {user} read {topics.base}/cmd/# (config/mosquitto/acl){who}"
    write_fix = (f"the broker's ACL must let user {user} write {topics.base}/events/#, health, status and reply/# "
                 f"(config/mosquitto/acl){who}")
    t0 = time.monotonic()
    st.client.subscribe(topics.cmd_filter, qos=1)
    if not _wait(st, st.subscribed, timeout):
        return Result("mqtt-rt", "FAIL", f"no SUBACK for {topics.cmd_filter} within {timeout:g} s{closed()}",
                      read_fix)
    refused = [rc for rc in st.suback if rc.is_failure]
    if refused:
        return Result("mqtt-rt", "FAIL", f"the broker refused the subscription to {topics.cmd_filter}: "
                      f"{_reason(refused[0])}: commands would never reach this node", read_fix)
    request_id = f"doctor-{secrets.token_hex(4)}"
    topic = topics.reply(request_id)
    # A reply topic: the node may write there, nobody waits for this request id, and a consumer of reply/#
    # reads a well-formed reply. Not retained, so it overwrites nothing.
    body = json.dumps({"request_id": request_id, "command": "doctor", "ok": True, "node_id": cfg.node_id})
    st.client.publish(topic, body, qos=1)
    if not _wait(st, st.published, timeout):
        return Result("mqtt-rt", "FAIL", f"no PUBACK for a publish to {topic} within {timeout:g} s{closed()}",
                      write_fix)
    ms = (time.monotonic() - t0) * 1000
    if st.puback.is_failure:
        return Result("mqtt-rt", "FAIL", f"the broker refused a publish to {topic}: {_reason(st.puback)}: "
                      "events would stay on this pole", write_fix)
    sub = ", ".join(str(rc) for rc in st.suback)
    if not st.v5:
        return Result("mqtt-rt", "WARN", f"subscription to {topics.cmd_filter} granted ({sub}), publish to {topic} "
                      "acknowledged, but MQTT 3.1.1 cannot show a refusal: a broker acknowledges a publish its "
                      "ACL drops, so events could be lost unseen",
                      'set mqtt.protocol = "5" (the broker must speak MQTT 5; mosquitto 2 does)')
    return Result("mqtt-rt", "OK", f"the broker lets this node write {topics.base}/ (PUBACK {st.puback} for "
                  f"{topic}) and subscribe to {topics.cmd_filter} ({sub}), MQTT 5, in {ms:.0f} ms")


def check_disk(cfg: Config) -> Result:
    from edge_agent.field.preflight import data_dir_problem

    d = Path(cfg.data_dir)
    fix_dir = f"create it writable by the edge-agent user: install -d -o edge-agent -m 0750 {d}"
    why = data_dir_problem(d, create=False)
    if why:
        return Result("disk", "FAIL", why + " (the agent refuses to start)", fix_dir)
    probe = d
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if d.exists() and not os.access(d, os.W_OK):
        return Result("disk", "FAIL", f"data_dir {d} is not writable by this user", fix_dir)
    try:
        du = shutil.disk_usage(probe)
    except OSError as exc:
        return Result("disk", "FAIL", f"data_dir {d}: {exc.strerror}", fix_dir)
    used = 0
    for name in ("outbox.sqlite3", "outbox.sqlite3-wal"):
        with contextlib.suppress(OSError):
            used += (d / name).stat().st_size
    budget = cfg.outbox.max_mb * 2**20
    need = max(0.0, budget - used)
    free_mb, need_mb = du.free / 2**20, need / 2**20
    msg = f"{d}: {free_mb:.0f} MB free, outbox uses {used / 2**20:.1f} of its {cfg.outbox.max_mb:g} MB budget"
    if du.free < need:
        return Result("disk", "FAIL", msg + ": the disk fills before the budget is reached",
                      f"lower outbox.max_mb below {free_mb * 0.8:.0f}, or free space on the data disk")
    # Journald, updates and clips share the disk: ask for room beyond the outbox budget.
    if du.free < need + 1024 * 2**20:
        return Result("disk", "WARN", msg + f": less than 1 GB spare beyond the {need_mb:.0f} MB still to fill",
                      "free space or lower outbox.max_mb")
    if not d.exists():
        return Result("disk", "WARN", msg + " (data_dir does not exist yet; the agent creates it)", fix_dir)
    return Result("disk", "OK", msg)


# -- the run --------------------------------------------------------------------------------------


CHECKS = ("config", "keys", "camera", "models", "broker", "mqtt-rt", "clock", "disk", "systemd")


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def pole_config_warnings(cfg: Config) -> list[Result]:
    """What a pole's own config should not say: it works on a bench, and reads nothing on a street."""
    out = []
    if cfg.camera.source == "demo":
        out.append(Result("camera", "WARN", "camera.source is 'demo': this pole sends the synthetic scene",
                          "set camera.source to the camera (picamera2, rtsp://..., /dev/video0)"))
    if cfg.mqtt.host in _LOCAL_HOSTS:
        out.append(Result("broker", "WARN", f"mqtt.host is {cfg.mqtt.host}: events stay on this pole",
                          "set mqtt.host to the operations room's broker"))
    if cfg.recorder.enabled and not cfg.clips.require_sealed_token:
        out.append(Result("keys", "WARN", "clips.require_sealed_token is false: a clip request may carry its "
                          "upload token in clear, readable by whoever reads cmd/# on the broker",
                          "set it to true; the operations room seals with 'ops request-clip --node-key NODE.pub'"))
    return out


def diagnose(cfg: Config, *, clock: ClockProbe = probe_clock, unit: Callable[[], UnitState] = probe_unit,
             skip: set[str] | None = None, emit: Callable[[Result], None] | None = None,
             from_file: bool = True) -> list[Result]:
    """Runs every check on a valid config; ``emit`` sees each result as soon as it is known. A skipped
    check is reported as SKIP, so a reader sees it was not made."""
    skip = skip or set()
    results: list[Result] = []

    def add(*rs: Result) -> None:
        for r in rs:
            if r.check in skip:
                continue
            results.append(r)
            if emit is not None:
                emit(r)

    for name in [c for c in CHECKS if c in skip and c != "config"]:
        r = Result(name, "SKIP", "skipped (--skip)")
        results.append(r)
        if emit is not None:
            emit(r)
    if from_file:
        add(*pole_config_warnings(cfg))

    steps: list[tuple[str, Callable[[], list[Result] | Result]]] = [
        ("keys", lambda: check_keys(cfg)),
        ("camera", lambda: check_camera(cfg)),
        ("models", lambda: check_models(cfg)),
        ("broker", lambda: check_mqtt(cfg)),
        ("clock", lambda: check_clock(clock)),
        ("disk", lambda: check_disk(cfg)),
        ("systemd", lambda: check_unit(unit)),
    ]
    for name, fn in steps:
        if name in skip:  # skipping the broker skips the round trip too: it needs the connection
            continue
        try:
            out = fn()
        except Exception as exc:  # one broken check must not hide the others
            out = Result(name, "FAIL", f"check crashed: {type(exc).__name__}: {exc}", "report this as a bug")
        add(*(out if isinstance(out, list) else [out]))
    return results


def run_doctor(config: Path | None, *, clock: ClockProbe = probe_clock, unit: Callable[[], UnitState] = probe_unit,
               skip: set[str] | None = None) -> int:
    """Prints one line per check; returns 1 when any check failed, else 0."""
    skip = skip or set()
    unknown = skip - set(CHECKS)
    if unknown:
        print(f"edge-agent: doctor: unknown check(s) {sorted(unknown)}; known: {', '.join(CHECKS)}", file=sys.stderr)
        return 2

    def emit(r: Result) -> None:
        print(r.line(), flush=True)

    path = resolve_config(config)
    try:
        cfg = load(path)
    except ConfigError as exc:
        emit(Result("config", "FAIL", str(exc), "fix the named key; edge-agent check-config FILE"))
        return 1
    if path is None:
        first = Result("config", "WARN", f"no --config and no {DEFAULT_CONFIG}: checking the embedded demo defaults",
                       f"edge-agent doctor --config {DEFAULT_CONFIG}")
    else:
        first = Result("config", "OK", f"{path}: {cfg.summary()}")
    emit(first)
    results = [first, *diagnose(cfg, clock=clock, unit=unit, skip=skip, emit=emit, from_file=path is not None)]
    fails = [r for r in results if r.status == "FAIL"]
    warns = [r for r in results if r.status == "WARN"]
    skipped = [r for r in results if r.status == "SKIP"]
    print(f"{'FAIL' if fails else 'OK'}: {len(fails)} failed, {len(warns)} warning(s), "
          f"{len(results) - len(fails) - len(warns) - len(skipped)} ok" + (f", {len(skipped)} skipped" if skipped
                                                                           else ""))
    return 1 if fails else 0
