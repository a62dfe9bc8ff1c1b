# SPDX-License-Identifier: Apache-2.0
"""The shipped broker side (config/mosquitto/) with the agent, the operations room and doctor (issue 14.3-4).

mosquitto runs exactly config/mosquitto/mosquitto.conf and config/mosquitto/acl; only the documented
site-specific values are replaced (paths, port, service user). Certificates are made here: a fleet CA,
the broker's, the pole's (signed from the CSR ``edge-agent provision`` makes), another pole's and the
operations room's.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import REPO, AgentProcess, Broker, wait_until, write_config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from test_agent_mqtt import _assert_complete_in_order
from test_tls import _cert, _write

from edge_agent.core.clock import ClockState
from edge_agent.field.doctor import UnitState, run_doctor
from edge_agent.field.provision import provision
from edge_agent.link.outbox import Outbox

SHIPPED = REPO / "config" / "mosquitto"
CA = "edge fleet CA"


def _sign_csr(csr_pem: bytes, ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """What the operations room does with a pole's node.csr (docs/deployment.md uses openssl for it)."""
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(csr.subject)
            .issuer_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, CA)]))
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))


@dataclass
class Fleet:
    broker: Broker
    ca: Path
    pole: tuple[Path, Path]  # the provisioned pole "pole-test": certificate, key
    other: tuple[Path, Path]  # another pole, "pole-other"
    ops: tuple[Path, Path]  # the operations room, CN "ops"


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    etc, db, logs = tmp_path / "etc", tmp_path / "db", tmp_path / "log"
    for d in (etc, db, logs):
        d.mkdir()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _write(etc / "ca.pem", _cert(CA, ca_key, CA, ca_key, ca=True))
    broker_key = ec.generate_private_key(ec.SECP256R1())
    _write(etc / "broker.crt", _cert("localhost", broker_key, CA, ca_key, False, san=True))
    _write(etc / "broker.key", key=broker_key)
    shutil.copyfile(SHIPPED / "acl", etc / "acl")

    ident = provision("pole-test", tmp_path / "pole")
    pole_cert = tmp_path / "pole" / "node.crt"
    pole_cert.write_bytes(_sign_csr(ident.csr_pem.encode(), ca_key).public_bytes(serialization.Encoding.PEM))

    def client_cert(cn: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        return _write(etc / f"{cn}.crt", _cert(cn, key, CA, ca_key, False)), _write(etc / f"{cn}.key", key=key)

    broker = Broker(tmp_path)
    conf = (SHIPPED / "mosquitto.conf").read_text()
    for placeholder, value in (("/etc/mosquitto/edge/", f"{etc}/"), ("/var/lib/mosquitto/", f"{db}/"),
                               ("/var/log/mosquitto/", f"{logs}/"),
                               ("\nlistener 8883\n", f"\nlistener {broker.port} 127.0.0.1\n"),
                               # Started as root, mosquitto would drop to this user: keep the test's own.
                               ("\nuser mosquitto\n", f"\nuser {getpass.getuser()}\n")):
        assert placeholder in conf, f"config/mosquitto/mosquitto.conf lost its documented {placeholder.strip()!r}"
        conf = conf.replace(placeholder, value)
    broker.conf.write_text(conf)
    broker.log = logs / "stderr.log"
    broker.start()
    yield Fleet(broker, ca, (pole_cert, tmp_path / "pole" / "node.key"), client_cert("pole-other"), client_cert("ops"))
    broker.stop()


class Client:
    """An MQTT 5 client with a certificate: the operations room, or a pole up to no good."""

    def __init__(self, fleet: Fleet, cert: tuple[Path, Path], client_id: str, subscribe: str | None = None) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._answers: dict[int, Any] = {}
        self._lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.tls_set(ca_certs=str(fleet.ca), certfile=str(cert[0]), keyfile=str(cert[1]))
        self.c.on_message = lambda _c, _u, m: self._keep(m)
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self._answers.__setitem__(mid, rc)
        self.c.on_subscribe = lambda _c, _u, mid, rcs, _p: self._answers.__setitem__(mid, rcs)
        self.c.connect("localhost", fleet.broker.port)
        self.c.loop_start()
        wait_until(self.c.is_connected, 10, f"{client_id} to connect")
        if subscribe:
            assert not any(rc.is_failure for rc in self.subscribe(subscribe))

    def _keep(self, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(m)

    def _answer(self, mid: int) -> Any:
        wait_until(lambda: mid in self._answers, 10, "the broker's answer")
        return self._answers.pop(mid)

    def publish(self, topic: str, payload: str) -> ReasonCode:
        rc: ReasonCode = self._answer(self.c.publish(topic, payload, qos=1).mid)
        return rc

    def subscribe(self, topic: str) -> list[ReasonCode]:
        rcs: list[ReasonCode] = self._answer(self.c.subscribe(topic, qos=1)[1])
        return rcs

    def on(self, suffix: str) -> list[Any]:
        with self._lock:
            return [json.loads(m.payload) for m in self.messages if m.topic.endswith(suffix)]

    def seqs(self, base: str = "edge/pole-test/events/") -> list[int]:
        with self._lock:
            return [json.loads(m.payload)["seq"] for m in self.messages if m.topic.startswith(base)]

    def raw(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [bytes(m.payload) for m in self.messages if m.topic.endswith(suffix)]

    def topics(self) -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _agent_config(tmp_path: Path, fleet: Fleet, node_id: str = "pole-test") -> Path:
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", fleet.broker.port, mqtt={"host": "localhost"})
    text = cfg.read_text().replace('node_id = "pole-test"', f'node_id = "{node_id}"')
    cfg.write_text(text + f'[mqtt.tls]\nca_file = "{fleet.ca}"\ncert_file = "{fleet.pole[0]}"\n'
                   f'key_file = "{fleet.pole[1]}"\n')
    return cfg


def _doctor(cfg: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, list[str]]:
    run_doctor(cfg, clock=lambda: ClockState(True, "timedatectl"), unit=lambda: UnitState(True, "enabled", "active"),
               skip={"camera", "models"})
    lines: dict[str, list[str]] = {}
    for ln in capsys.readouterr().out.splitlines():
        parts = ln.split()
        if len(parts) > 1 and parts[0] in ("OK", "WARN", "FAIL"):
            lines.setdefault(parts[1], []).append(ln)
    return lines


def _ping(ops: Client, request_id: str) -> dict[str, Any]:
    assert not ops.publish("edge/pole-test/cmd/ping", json.dumps({"request_id": request_id})).is_failure
    wait_until(lambda: bool(ops.on(f"/reply/{request_id}")), 20, f"the reply to {request_id}")
    reply: dict[str, Any] = ops.on(f"/reply/{request_id}")[0]
    return reply


def test_agent_ops_and_doctor_under_the_shipped_broker_config(tmp_path: Path, fleet: Fleet,
                                                              agents: list[AgentProcess],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    ops = Client(fleet, fleet.ops, "ops-console", subscribe="edge/#")
    other: Client | None = None
    try:
        cfg = _agent_config(tmp_path, fleet)
        agent = AgentProcess(cfg, tmp_path / "agent.log").start()
        agents.append(agent)
        wait_until(lambda: len(ops.seqs()) >= 2 and bool(ops.on("/health")), 30,
                   "events and health at the operations room")
        link = ops.on("/health")[-1]["link"]
        assert link["state"] == "connected" and link["protocol"] == "5", link
        assert link["subscription"] == "granted" and link["publish_refused"] == 0, link
        assert ops.raw("edge/pole-test/status")[-1] == b"online"
        assert _ping(ops, "acl-1")["ok"] is True

        # Another pole: a valid certificate of the same CA, trying the agent's client id on top.
        other = Client(fleet, fleet.other, "edge-agent-pole-test")
        assert other.publish("edge/pole-test/events/plate", '{"text": "FAKE1"}').value == 0x87
        assert other.publish("edge/pole-test/status", "offline").value == 0x87
        assert other.publish("edge/pole-test/cmd/ping", '{"request_id": "forged"}').value == 0x87
        assert not other.publish("edge/pole-other/events/motion", "{}").is_failure, "its own topics are fine"
        other.subscribe("edge/pole-test/cmd/#")  # granted by mosquitto, filtered on delivery
        other.subscribe("edge/pole-test/events/#")
        assert _ping(ops, "acl-2")["ok"] is True
        time.sleep(0.5)
        assert not other.topics(), f"another pole read this pole's topics: {other.topics()}"
        assert not ops.on("/reply/forged") and all(e.get("text") != "FAKE1" for e in ops.on("/events/plate"))
        # Its client id became its CN: the agent was not thrown off.
        assert "link lost" not in agent.output()

        # doctor with the pole's own certificate, while the agent runs.
        lines = _doctor(cfg, capsys)
        assert any(ln.startswith("OK   broker") and "connected (TLS, client certificate, MQTT 5)" in ln
                   for ln in lines["broker"]), lines["broker"]
        assert [ln for ln in lines["mqtt-rt"] if ln.startswith("OK ")], lines["mqtt-rt"]
        assert "PUBACK" in lines["mqtt-rt"][0] and "edge/pole-test/cmd/+" in lines["mqtt-rt"][0]
        assert not [ln for ln in lines["broker"] + lines["mqtt-rt"] if ln.startswith("FAIL")]
        # The agent takes its connection back and carries on: commands answered, no event missing.
        assert _ping(ops, "acl-3")["ok"] is True
        # The takeover sends no Last Will: the pole never looked offline.
        assert b"offline" not in ops.raw("edge/pole-test/status")
        made = ops.on("/health")[-1]["outbox"]["last_seq"]
        wait_until(lambda: set(range(1, made + 1)) <= set(ops.seqs()), 20, "every event made so far")
        _assert_complete_in_order(ops.seqs())
    finally:
        ops.close()
        if other is not None:
            other.close()


def test_a_node_id_that_is_not_the_certificates_cn_is_refused_loudly(tmp_path: Path, fleet: Fleet,
                                                                     agents: list[AgentProcess],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 14: with MQTT 3.1.1 this lost every event, with no warning and link "connected".
    cfg = _agent_config(tmp_path, fleet, node_id="pole-wrong")
    agent = AgentProcess(cfg, tmp_path / "agent.log").start()
    agents.append(agent)
    wait_until(lambda: "refused a publish to edge/pole-wrong/" in agent.output(), 30, "the refusal logged")
    time.sleep(2)
    assert agent.terminate() == 0
    outbox = Outbox(tmp_path / "data" / "outbox.sqlite3", "pole-wrong", 1000, 10**8)
    try:
        assert outbox.depth > 0 and outbox.depth == outbox.stats().last_seq, "every event kept"
    finally:
        outbox.close()
    lines = _doctor(cfg, capsys)
    rt = lines["mqtt-rt"][0]
    assert rt.startswith("FAIL") and "Not authorized (0x87)" in rt, rt
    assert "CN is 'pole-test' but node_id is 'pole-wrong'" in rt, rt


def test_the_ops_tools_work_with_the_operations_rooms_certificate(tmp_path: Path, fleet: Fleet,
                                                                  agents: list[AgentProcess],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 14.5: every ops tool presents a client certificate; under the shipped ACL "ops" may read all
    # and write only cmd/.
    from edge_agent.cli import main
    from edge_agent.core.keys import generate_keypair

    generate_keypair(tmp_path / "ops-sign.key", tmp_path / "ops-sign.pub")
    cfg = _agent_config(tmp_path, fleet)
    cfg.write_text(cfg.read_text() + f'[security.trusted_keys]\nops1 = "{tmp_path / "ops-sign.pub"}"\n')
    agents.append(AgentProcess(cfg, tmp_path / "agent.log").start())
    broker = ["--host", "localhost", "--port", str(fleet.broker.port), "--ca-file", str(fleet.ca),
              "--cert-file", str(fleet.ops[0]), "--key-file", str(fleet.ops[1])]

    def monitor() -> dict[str, Any]:
        main(["ops", "monitor", "--once", "--json", "--wait", "1", *broker])
        doc: dict[str, Any] = json.loads(capsys.readouterr().out)
        return doc

    wait_until(lambda: any(r["node"] == "pole-test" and r["state"] == "online" for r in monitor()["nodes"]), 40,
               "the monitor to see the pole online")
    rc = main(["ops", "hotlist", "--node", "pole-test", "--list-id", "stolen", "--action", "add", "--plate",
               "AB123CD", "--key", str(tmp_path / "ops-sign.key"), "--key-id", "ops1", "--timeout", "30", *broker])
    assert rc == 0, capsys.readouterr()
    assert json.loads((tmp_path / "data" / "hotlists.json").read_text())["lists"] == {"stolen": {"AB123CD": ""}}
    # Without the certificate the broker refuses the tool: exit 1 with the reason, not a traceback.
    rc = main(["ops", "monitor", "--once", "--host", "localhost", "--port", str(fleet.broker.port),
               "--ca-file", str(fleet.ca)])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
