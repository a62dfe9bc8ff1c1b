# SPDX-License-Identifier: Apache-2.0
"""Files, not messages: ``edge-agent ops keygen`` (an operations-room signing key), ``edge-agent ops
verify-clip`` (a clip against its signed manifest) and ``edge-agent audit verify`` (a node's audit log:
hash chain, signatures, and the head the operations room received)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge_agent.ops.broker import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, err


def _head(value: str) -> tuple[int, str]:
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise argparse.ArgumentTypeError("give SEQ:HASH, e.g. 42:5bbf… (64 hex digits), from the last events/audit")
    return int(seq), digest


def _node_public_key(cfg: Any) -> Any:
    """The node's public key from its config: the .pub beside the key, or derived from the key itself."""
    from edge_agent.core.keys import load_private_key, load_public_key, public_path_for
    from edge_agent.field.provision import node_key_path

    key_path = node_key_path(cfg)
    pub = public_path_for(key_path)
    if pub.exists():
        return load_public_key(pub)
    if key_path.exists():
        return load_private_key(key_path).public_key()
    return None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from edge_agent.config import ConfigError, load, resolve_config
    from edge_agent.core.keys import KeyFileError, load_public_key
    from edge_agent.footage.audit import verify_file
    from edge_agent.footage.audit_trail import audit_path

    path: Path | None = args.file
    node_key = None
    try:
        if args.node_key is not None:
            node_key = load_public_key(args.node_key)
        if path is None:
            cfg = load(resolve_config(args.config))
            path = audit_path(cfg.data_dir)
            if node_key is None:
                node_key = _node_public_key(cfg)
    except ConfigError as exc:
        err(f"invalid config: {exc}")
        return EXIT_USAGE
    except KeyFileError as exc:
        err(str(exc))
        return EXIT_USAGE
    result = verify_file(path, node_key, args.head)
    signed = "signatures checked" if node_key is not None else "signatures NOT checked (give --node-key NODE.pub)"
    if result.ok and result.entries == 0:
        print(f"OK {path}: {result.problem or 'empty'}")
        return EXIT_OK
    if result.ok:
        head = ""
        if args.head:
            head = (f", seq {args.head[0]} as received was removed by retention" if args.head[0] <= result.removed_to
                    else f", contains seq {args.head[0]} as received")
        removed = (f" (entries 1-{result.removed_to} removed by retention, record seq {result.removed_record})"
                   if result.removed_to else "")
        print(f"OK {path}: {result.entries} entries{removed}, hash chain intact up to seq {result.last_seq} "
              f"({result.last_hash}), {signed}{head}")
        return EXIT_OK
    print(f"BROKEN {path}: {result.problem} ({result.entries} entries before it are intact)")
    return EXIT_FAILURE


# -- ops keygen ----------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from edge_agent.core.keys import generate_keypair, public_path_for

    key: Path = args.keyfile
    pub = public_path_for(key)
    try:
        generate_keypair(key, pub)
    except FileExistsError:
        err(f"{key} exists; not overwriting a key (remove it first if you mean to replace it)")
        return EXIT_USAGE
    except OSError as exc:
        err(f"cannot write {key}: {exc.strerror or exc}")
        return EXIT_FAILURE
    print(f"private key {key} (mode 0600: keep it in the operations room)")
    print(f"public key  {pub}")
    print("trust it on a node with, in its config:")
    print(f'  [security.trusted_keys]\n  {args.key_id} = "{pub.resolve()}"')
    return EXIT_OK


# -- ops verify-clip -----------------------------------------------------------------------------


def cmd_verify_clip(args: argparse.Namespace) -> int:
    from edge_agent.core.keys import KeyFileError, load_public_key
    from edge_agent.footage.clips.manifest import VerifyError, verify_clip

    try:
        node_key = load_public_key(args.node_key) if args.node_key else None
        manifest = verify_clip(args.clip, args.manifest, node_key)
    except KeyFileError as exc:
        err(str(exc))
        return EXIT_USAGE
    except VerifyError as exc:
        print(f"FAILED {exc}")
        return EXIT_FAILURE
    c = manifest["clip"]
    # Manifests signed before purpose and operator were required have neither.
    why = (f" ({manifest['operator']}), purpose {manifest['purpose']}"
           if manifest.get("purpose") and manifest.get("operator") else "")
    print(f"OK {args.clip.name}: sha256 {c['sha256']}, {c['bytes']} bytes, {c['frames']} frames "
          f"{c['start']}..{c['end']}, node {manifest['node_id']} camera {manifest['camera']}, "
          f"request {manifest['request_id']} for {manifest['agency']}{why}")
    if node_key is None:
        print("note: checked against the key inside the manifest; pass --node-key NODE.pub to prove the origin")
    return EXIT_OK


def add_audit_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="check the audit log of signed commands",
                           description="Check a node's audit log (docs/clips.md, 'Audit log').")
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    av = asub.add_parser("verify", help="check the hash chain, signatures and head; exit 1 naming the first bad entry",
                         description="Check the audit log: every line's hash and link, the node's signature on "
                                     "each, that the log reaches its own head file, and (--head) that it still "
                                     "holds the last record the operations room received. Exit 0 intact, 1 not.")
    av.add_argument("--config", type=Path, default=None,
                    help="node config (the log is {data_dir}/audit.log; default: /etc/edge-agent/edge-agent.toml "
                         "when it exists, else the embedded defaults, as for every command)")
    av.add_argument("--file", type=Path, default=None, help="audit log file instead of the config's")
    av.add_argument("--node-key", type=Path, default=None,
                    help="the node's public key (default: the .pub beside the config's node key)")
    av.add_argument("--head", type=_head, default=None, metavar="SEQ:HASH",
                    help="an entry the operations room received (events/audit): exit 1 unless the log holds it")
    av.set_defaults(func=cmd_audit_verify)


def add_file_parsers(osub: Any) -> None:
    kg = osub.add_parser("keygen", help="create an Ed25519 signing key (KEYFILE, 0600) and its .pub",
                         description="Create the operations room's signing key and print the lines that make "
                                     "a node trust it.")
    kg.add_argument("keyfile", type=Path)
    kg.add_argument("--key-id", default="ops",
                    help="the id nodes will know this key by, for the hint printed (default: %(default)s)")
    kg.set_defaults(func=cmd_keygen)

    vc = osub.add_parser("verify-clip", help="check a clip against its signed manifest",
                         description="Check a clip's size and SHA-256 against its manifest and the manifest's "
                                     "signature. Exit 0 when both check out.")
    vc.add_argument("clip", type=Path)
    vc.add_argument("manifest", type=Path)
    vc.add_argument("--node-key", type=Path, default=None, help="the node's public key (proves the origin)")
    vc.set_defaults(func=cmd_verify_clip)
