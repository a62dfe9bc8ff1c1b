# SPDX-License-Identifier: Apache-2.0
"""Operations-room tools and the audit check: ``edge-agent ops keygen | request-clip | verify-clip`` and
``edge-agent audit verify``. They let the whole clip flow be run and checked from one machine."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
TOKEN_ENV = "EDGE_AGENT_UPLOAD_TOKEN"


def _err(msg: str) -> None:
    print(f"edge-agent: {msg}", file=sys.stderr)


# -- audit verify --------------------------------------------------------------------------------


def _head(value: str) -> tuple[int, str]:
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise argparse.ArgumentTypeError("give SEQ:HASH, e.g. 42:5bbf… (64 hex digits), from the last events/audit")
    return int(seq), digest


def _node_public_key(cfg: Any) -> Any:
    """The node's public key from its config: the .pub beside the key, or derived from the key itself."""
    from edge_agent.provision import node_key_path
    from edge_agent.signing import load_private_key, load_public_key, public_path_for

    key_path = node_key_path(cfg)
    pub = public_path_for(key_path)
    if pub.exists():
        return load_public_key(pub)
    if key_path.exists():
        return load_private_key(key_path).public_key()
    return None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from edge_agent.audit import verify_file
    from edge_agent.audit_trail import audit_path
    from edge_agent.config import ConfigError, load
    from edge_agent.signing import KeyFileError, load_public_key

    path: Path | None = args.file
    node_key = None
    try:
        if args.node_key is not None:
            node_key = load_public_key(args.node_key)
        if path is None:
            cfg = load(args.config)
            path = audit_path(cfg.data_dir)
            if node_key is None:
                node_key = _node_public_key(cfg)
    except ConfigError as exc:
        _err(f"invalid config: {exc}")
        return EXIT_USAGE
    except KeyFileError as exc:
        _err(str(exc))
        return EXIT_USAGE
    result = verify_file(path, node_key, args.head)
    signed = "signatures checked" if node_key is not None else "signatures NOT checked (give --node-key NODE.pub)"
    if result.ok and result.entries == 0:
        print(f"OK {path}: {result.problem or 'empty'}")
        return EXIT_OK
    if result.ok:
        head = f", contains seq {args.head[0]} as received" if args.head else ""
        print(f"OK {path}: {result.entries} entries, hash chain intact up to seq {result.last_seq} "
              f"({result.last_hash}), {signed}{head}")
        return EXIT_OK
    print(f"BROKEN {path}: {result.problem} ({result.entries} entries before it are intact)")
    return EXIT_FAILURE


# -- ops keygen ----------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from edge_agent.signing import generate_keypair, public_path_for

    key: Path = args.keyfile
    pub = public_path_for(key)
    try:
        generate_keypair(key, pub)
    except FileExistsError:
        _err(f"{key} exists; not overwriting a key (remove it first if you mean to replace it)")
        return EXIT_USAGE
    except OSError as exc:
        _err(f"cannot write {key}: {exc.strerror or exc}")
        return EXIT_FAILURE
    print(f"private key {key} (mode 0600: keep it in the operations room)")
    print(f"public key  {pub}")
    print("trust it on a node with, in its config:")
    print(f'  [security.trusted_keys]\n  {args.key_id} = "{pub.resolve()}"')
    return EXIT_OK


# -- ops verify-clip -----------------------------------------------------------------------------


def cmd_verify_clip(args: argparse.Namespace) -> int:
    from edge_agent.clips.manifest import VerifyError, verify_clip
    from edge_agent.signing import KeyFileError, load_public_key

    try:
        node_key = load_public_key(args.node_key) if args.node_key else None
        manifest = verify_clip(args.clip, args.manifest, node_key)
    except KeyFileError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except VerifyError as exc:
        print(f"FAILED {exc}")
        return EXIT_FAILURE
    c = manifest["clip"]
    print(f"OK {args.clip.name}: sha256 {c['sha256']}, {c['bytes']} bytes, {c['frames']} frames "
          f"{c['start']}..{c['end']}, node {manifest['node_id']} camera {manifest['camera']}, "
          f"request {manifest['request_id']} for {manifest['agency']}")
    if node_key is None:
        print("note: checked against the key inside the manifest; pass --node-key NODE.pub to prove the origin")
    return EXIT_OK


# -- ops request-clip ----------------------------------------------------------------------------


class _Usage(Exception):
    pass


def _when(value: str, name: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise _Usage(f"--{name}: not an ISO-8601 time: {value!r}") from None
    if dt.tzinfo is None:
        raise _Usage(f"--{name}: give a timezone, e.g. 2026-11-25T08:10:00Z")
    return dt


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cmd_request_clip(args: argparse.Namespace) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_agent.signing import KeyFileError, load_private_key, sign_command

    try:
        key = load_private_key(args.key)
    except KeyFileError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            _err(f"cannot read --token-file: {exc.strerror or exc}")
            return EXIT_USAGE
    else:
        token = os.environ.get(TOKEN_ENV, "")
    if not token:
        _err(f"no upload token: give --token-file FILE or set {TOKEN_ENV} (never on the command line)")
        return EXIT_USAGE
    if args.last is not None:
        end = datetime.now(UTC) - timedelta(seconds=1)
        start = end - timedelta(seconds=args.last)
    elif args.start and args.end:
        try:
            start, end = _when(args.start, "start"), _when(args.end, "end")
        except _Usage as exc:
            _err(str(exc))
            return EXIT_USAGE
    else:
        _err("give --start and --end, or --last SECONDS")
        return EXIT_USAGE
    rid = args.request_id or f"clip-{secrets.token_hex(6)}"
    body: dict[str, Any] = {"request_id": rid, "camera": args.camera, "start": _iso(start), "end": _iso(end),
                            "agency": args.agency, "upload_url": args.upload_url, "upload_token": token}
    signed = sign_command(body, key, args.key_id, ttl_s=args.ttl, node_id=args.node, command="clip")
    base = f"{args.prefix}/{args.node}"
    replies: list[dict[str, Any]] = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        try:
            reply = json.loads(msg.payload)
        except ValueError:
            return
        shown = {k: v for k, v in reply.items() if k not in ("request_id", "command")}
        print(json.dumps(shown, separators=(", ", ": ")), flush=True)
        replies.append(reply)
        if not reply.get("ok") or reply.get("state") in ("done", "failed"):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-agent-ops-{secrets.token_hex(4)}")
    try:
        if args.username:
            password = args.password_file.read_text().strip() if args.password_file else None
            client.username_pw_set(args.username, password)
        if args.ca_file:
            client.tls_set(ca_certs=str(args.ca_file))
    except (OSError, ValueError) as exc:
        _err(f"cannot set up the broker connection: {exc}")
        return EXIT_USAGE
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(f"{base}/reply/{rid}", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    try:
        client.connect(args.host, args.port)
    except OSError as exc:
        _err(f"cannot reach the broker {args.host}:{args.port}: {exc}")
        return EXIT_FAILURE
    client.loop_start()
    try:
        if not subscribed.wait(10):
            _err("broker did not confirm the reply subscription")
            return EXIT_FAILURE
        print(f"request {rid}: {body['camera']} {body['start']}..{body['end']} for {args.agency} "
              f"-> {base}/cmd/clip", flush=True)
        client.publish(f"{base}/cmd/clip", json.dumps(signed), qos=1).wait_for_publish(10)
        if not done.wait(args.timeout):
            _err(f"no final reply within {args.timeout:.0f} s")
            return EXIT_FAILURE
    finally:
        client.loop_stop()
        client.disconnect()
    final = replies[-1]
    return EXIT_OK if final.get("ok") and final.get("state") == "done" else EXIT_FAILURE


def add_commands(sub: Any) -> None:
    """Adds ``audit`` and ``ops`` to the edge-agent command line."""
    audit = sub.add_parser("audit", help="check the audit log of signed commands")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    av = asub.add_parser("verify", help="check the hash chain, signatures and head; exit 1 naming the first bad entry")
    av.add_argument("--config", type=Path, default=None, help="node config (the log is {data_dir}/audit.log)")
    av.add_argument("--file", type=Path, default=None, help="audit log file instead of the config's")
    av.add_argument("--node-key", type=Path, default=None,
                    help="the node's public key (default: the .pub beside the config's node key)")
    av.add_argument("--head", type=_head, default=None, metavar="SEQ:HASH",
                    help="an entry the operations room received (events/audit): exit 1 unless the log holds it")
    av.set_defaults(func=cmd_audit_verify)

    ops = sub.add_parser("ops", help="operations-room tools: keys, clip requests, clip verification")
    osub = ops.add_subparsers(dest="ops_command", required=True, metavar="ACTION")
    kg = osub.add_parser("keygen", help="create an Ed25519 signing key (KEYFILE, 0600) and its .pub")
    kg.add_argument("keyfile", type=Path)
    kg.add_argument("--key-id", default="ops", help="the id nodes will know this key by (for the hint printed)")
    kg.set_defaults(func=cmd_keygen)

    rq = osub.add_parser("request-clip", help="sign and send a clip request, print the node's replies")
    rq.add_argument("--node", required=True, help="node_id of the pole")
    rq.add_argument("--key", type=Path, required=True, help="ops private key (from 'ops keygen')")
    rq.add_argument("--key-id", required=True, help="id of that key in the node's security.trusted_keys")
    rq.add_argument("--agency", required=True)
    rq.add_argument("--upload-url", required=True, help="https:// base URL the clip and manifest are sent to")
    rq.add_argument("--token-file", type=Path, default=None,
                    help=f"file holding the upload bearer token (or set {TOKEN_ENV})")
    rq.add_argument("--camera", default="cam0")
    rq.add_argument("--start", help="ISO-8601 with timezone")
    rq.add_argument("--end", help="ISO-8601 with timezone")
    rq.add_argument("--last", type=float, default=None, help="instead of --start/--end: the last N seconds")
    rq.add_argument("--request-id", default=None)
    rq.add_argument("--ttl", type=float, default=300.0, help="seconds the signed request stays valid")
    rq.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the final reply")
    rq.add_argument("--host", default="localhost")
    rq.add_argument("--port", type=int, default=1883)
    rq.add_argument("--prefix", default="edge")
    rq.add_argument("--username", default="")
    rq.add_argument("--password-file", type=Path, default=None)
    rq.add_argument("--ca-file", type=Path, default=None, help="CA for a TLS broker")
    rq.set_defaults(func=cmd_request_clip)

    vc = osub.add_parser("verify-clip", help="check a clip against its signed manifest")
    vc.add_argument("clip", type=Path)
    vc.add_argument("manifest", type=Path)
    vc.add_argument("--node-key", type=Path, default=None, help="the node's public key (proves the origin)")
    vc.set_defaults(func=cmd_verify_clip)
