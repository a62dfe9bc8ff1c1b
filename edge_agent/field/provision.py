"""Node identity: ``edge-agent provision`` and the key-file permission rule the agent enforces.

A node has two private keys, both created on the pole and never leaving it:

* an Ed25519 **signing key** (``node-signing.key``): the node signs what it vouches for with it; the
  operations room records its public key;
* an MQTT **TLS key** (``node.key``, EC P-256: every TLS stack and mosquitto accept it) and a
  certificate signing request (``node.csr``, CN = node id) for the operations room's CA to sign into
  ``node.crt``.

Private key files are written 0600 through a file descriptor opened with that mode, so there is no
moment when another user could read them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIGNING_KEY = "node-signing.key"
SIGNING_PUB = "node-signing.pub"
TLS_KEY = "node.key"
TLS_CSR = "node.csr"
TLS_CERT = "node.crt"
DEFAULT_DIR = Path("/etc/edge-agent")


class ProvisionError(Exception):
    """Provisioning cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Identity:
    node_id: str
    directory: Path
    signing_public_b64: str  # raw 32-byte Ed25519 public key, base64
    signing_fingerprint: str  # sha256 of the raw public key, hex
    signing_public_pem: str
    csr_pem: str

    def paths(self) -> dict[str, Path]:
        d = self.directory
        return {"signing_key": d / SIGNING_KEY, "signing_pub": d / SIGNING_PUB, "tls_key": d / TLS_KEY,
                "csr": d / TLS_CSR, "cert": d / TLS_CERT}


def _write_private(path: Path, data: bytes) -> None:
    # Write to a temporary name created 0600, fsync, then rename: a crash leaves either the old file or
    # the complete new one, and the key is never readable by others, not even for a moment.
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits, but be explicit
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def provision(node_id: str, directory: Path, force: bool = False, owner: str | None = None) -> Identity:
    """Creates the node's keys and CSR in ``directory``; refuses to replace existing keys unless ``force``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import NameOID

    from edge_agent.config import _TOPIC_SAFE

    if not _TOPIC_SAFE.fullmatch(node_id):
        raise ProvisionError(f"node id {node_id!r} must be 1-64 letters, digits, '.', '_' or '-' "
                             "(it is an MQTT topic level and the certificate's CN)")
    uid = gid = -1
    if owner:
        try:
            pw = pwd.getpwnam(owner)
        except KeyError:
            raise ProvisionError(f"user {owner!r} does not exist (scripts/install.sh creates edge-agent)") from None
        uid, gid = pw.pw_uid, pw.pw_gid
    existing = [directory / n for n in (SIGNING_KEY, TLS_KEY) if (directory / n).exists()]
    if existing and not force:
        raise ProvisionError(
            f"{', '.join(map(str, existing))} already exist(s): this node is provisioned. Re-provisioning "
            "changes its identity (the operations room must then re-register it); use --force to do it anyway")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProvisionError(f"cannot create {directory}: {exc.strerror} (run as root, or pass --dir)") from None

    signing = ed25519.Ed25519PrivateKey.generate()
    tls_key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
           .sign(tls_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    raw_pub = signing.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub_pem = signing.public_key().public_bytes(pem, spki)
    csr_pem = csr.public_bytes(pem)
    try:
        _write_private(directory / SIGNING_KEY, signing.private_bytes(pem, pkcs8, none))
        _write_private(directory / TLS_KEY, tls_key.private_bytes(pem, pkcs8, none))
        _write_public(directory / SIGNING_PUB, pub_pem)
        _write_public(directory / TLS_CSR, csr_pem)
        if owner:
            for name in (SIGNING_KEY, TLS_KEY, SIGNING_PUB, TLS_CSR):
                os.chown(directory / name, uid, gid)
    except OSError as exc:
        raise ProvisionError(f"cannot write keys in {directory}: {exc.strerror or exc}") from None
    return Identity(node_id, directory, base64.b64encode(raw_pub).decode(), hashlib.sha256(raw_pub).hexdigest(),
                    pub_pem.decode(), csr_pem.decode())


def report(ident: Identity) -> str:
    """What the technician sends to the operations room, and what goes into the config."""
    p = ident.paths()
    return "\n".join([
        f"Provisioned node {ident.node_id} in {ident.directory}",
        f"  private keys (0600, never send these): {p['signing_key']}  {p['tls_key']}",
        "",
        "Send to the operations room:",
        f"  node id:                {ident.node_id}",
        f"  signing public key:     ed25519:{ident.signing_public_b64}",
        f"  key fingerprint:        sha256:{ident.signing_fingerprint}",
        f"  certificate request:    {p['csr']}  (contents below)",
        "",
        ident.csr_pem.rstrip(),
        "",
        f"When the signed certificate comes back, save it as {p['cert']} and set in the config:",
        "  [mqtt.tls]",
        f'  cert_file = "{p["cert"]}"',
        f'  key_file = "{p["tls_key"]}"',
        "  [security]",
        f'  node_key_file = "{p["signing_key"]}"',
        "Then run:  edge-agent doctor --config /etc/edge-agent/edge-agent.toml",
    ])


# -- the permission rule ------------------------------------------------------------------------

DEFAULT_NODE_KEY = "security.node_key_file (default)"  # how the unconfigured node key is named in messages
IDENTITY_FILE = "node-identity.json"


def default_node_key_path(cfg: Any) -> Path:
    """Where the agent keeps its own signing key when ``security.node_key_file`` is not set; the same file
    name 'edge-agent provision' writes, so a provisioned key and a generated one look alike."""
    return Path(cfg.data_dir) / "keys" / SIGNING_KEY


def node_key_path(cfg: Any) -> Path:
    return Path(cfg.security.node_key_file or default_node_key_path(cfg))


def node_identity_path(cfg: Any) -> Path:
    """The record of the node's signing-key fingerprint: a key that is lost or replaced is refused, not
    silently regenerated (a new key is a new identity the operations room does not know)."""
    return Path(cfg.data_dir) / IDENTITY_FILE


def secret_files(cfg: Any) -> list[tuple[str, Path]]:
    """(config key, path) of every file in the config that holds a secret, and of the node key the agent
    made itself under data_dir (as much a secret, though no config key names it)."""
    out: list[tuple[str, Path]] = []
    tls = cfg.mqtt.tls
    if tls is not None and tls.key_file is not None:
        out.append(("mqtt.tls.key_file", Path(tls.key_file)))
    if cfg.mqtt.password_file is not None:
        out.append(("mqtt.password_file", Path(cfg.mqtt.password_file)))
    # The security section belongs to the signed-command work; read it defensively so this rule needs
    # no change when keys are added there.
    sec = getattr(cfg, "security", None)
    if sec is not None:
        for name in sorted(type(sec).model_fields):
            if name.endswith("key_file"):
                value = getattr(sec, name)
                if value is not None:
                    out.append((f"security.{name}", Path(value)))
        if getattr(sec, "node_key_file", None) is None:
            default = default_node_key_path(cfg)
            if default.exists():  # absent until the agent first needs it: nothing to leak yet
                out.append((DEFAULT_NODE_KEY, default))
    return out


def permission_problem(path: Path) -> str | None:
    """Why a secret file is unsafe (readable or writable by any user), or None when it is fine."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"{path}: cannot stat: {exc.strerror}"
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        return (f"{path} is readable or writable by every user (mode {stat.S_IMODE(mode):04o}); "
                f"fix: chmod 600 {path}")
    return None


def check_secret_files(cfg: Any) -> list[str]:
    """One message per unsafe secret file in the config."""
    problems = []
    for key, path in secret_files(cfg):
        why = permission_problem(path)
        if why is not None:
            problems.append(f"{key}: {why}")
    return problems
