"""MQTT over TLS with client certificates and a password file, against a real mosquitto."""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import subprocess
from pathlib import Path

import pytest
from conftest import AgentProcess, Broker, Collector, free_port, wait_until, write_config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          ca: bool, san: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, encipher_only=False,
                                          decipher_only=False), critical=True)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)  # the agent refuses key files other users can read
    return path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("ops-room CA", ca_key, "ops-room CA", ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    node_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    d = tmp_path / "pki"
    d.mkdir()
    return {
        "ca": _write(d / "ca.pem", ca),
        "server_cert": _write(d / "server.pem", _cert("localhost", srv_key, "ops-room CA", ca_key, False, True)),
        "server_key": _write(d / "server.key", key=srv_key),
        "node_cert": _write(d / "node.pem", _cert("pole-test", node_key, "ops-room CA", ca_key, False)),
        "node_key": _write(d / "node.key", key=node_key),
        "other_ca": _write(d / "other-ca.pem", _cert("rogue CA", other_key, "rogue CA", other_key, ca=True)),
    }


@pytest.fixture
def tls_broker(tmp_path: Path, pki: dict[str, Path]) -> Broker:
    b = Broker(tmp_path)
    pwfile = tmp_path / "passwd"
    pwfile.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "pole", "s3cret-pw"], check=True)
    pwfile.chmod(0o600)
    b.tls_port = free_port()  # type: ignore[attr-defined]
    b.conf.write_text(
        # mosquitto started as root drops to user "mosquitto", who cannot read pytest's private tmp dir.
        f"user {getpass.getuser()}\nper_listener_settings false\nallow_anonymous false\n"
        f"password_file {pwfile}\npersistence false\n"
        f"listener {b.port} 127.0.0.1\n"
        f"listener {b.tls_port} 127.0.0.1\ncafile {pki['ca']}\ncertfile {pki['server_cert']}\n"  # type: ignore[attr-defined]
        f"keyfile {pki['server_key']}\nrequire_certificate true\n"
    )
    b.start()
    yield b  # type: ignore[misc]
    b.stop()


def _tls_config(tmp_path: Path, broker: Broker, pki: dict[str, Path], ca: Path) -> Path:
    pw = tmp_path / "mqtt-password"
    pw.write_text("s3cret-pw\n")
    pw.chmod(0o600)
    cfg = write_config(tmp_path / "a.toml", tmp_path / "data", broker.tls_port,  # type: ignore[attr-defined]
                       mqtt={"host": "localhost", "username": "pole", "password_file": str(pw)})
    cfg.write_text(cfg.read_text() + f'[mqtt.tls]\nca_file = "{ca}"\ncert_file = "{pki["node_cert"]}"\n'
                   f'key_file = "{pki["node_key"]}"\n')
    return cfg


def _collector(broker: Broker) -> Collector:
    # The operations room's stand-in authenticates on the plain loopback listener.
    c = Collector(broker.port, username="pole", password="s3cret-pw")
    wait_until(lambda: c.client.is_connected(), 10, "collector to connect")
    return c


def test_tls_with_client_cert_and_password_delivers(tmp_path: Path, tls_broker: Broker, pki: dict[str, Path],
                                                    agents: list[AgentProcess]) -> None:
    col = _collector(tls_broker)
    try:
        agent = AgentProcess(_tls_config(tmp_path, tls_broker, pki, pki["ca"]), tmp_path / "agent.log").start()
        agents.append(agent)
        wait_until(lambda: bool(col.on("/events/motion")) and bool(col.on("/health")), 30, "events over TLS")
        assert col.on("/health")[-1].json()["link"]["state"] == "connected"
        assert "s3cret-pw" not in agent.output()
    finally:
        col.close()


def test_tls_with_wrong_ca_is_refused(tmp_path: Path, tls_broker: Broker, pki: dict[str, Path],
                                      agents: list[AgentProcess]) -> None:
    col = _collector(tls_broker)
    try:
        agent = AgentProcess(_tls_config(tmp_path, tls_broker, pki, pki["other_ca"]), tmp_path / "agent.log").start()
        agents.append(agent)
        wait_until(lambda: "unreachable" in agent.output(), 20, "the agent to report the broker unreachable")
        assert not col.on("/events/"), "nothing may be sent to a broker we cannot verify"
        assert agent.proc is not None and agent.proc.poll() is None
    finally:
        col.close()
