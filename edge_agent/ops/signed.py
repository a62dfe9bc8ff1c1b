# SPDX-License-Identifier: Apache-2.0
"""``edge-agent ops request-clip | hotlist | config``: sign a command for a node (bound to that node and that
command, docs/mqtt.md "Signed commands"), send it, print every reply until the final one.

Exit status: 0 when every node's final reply is ``ok``, 1 on a refusal, a failure or no final reply
within ``--timeout``, 2 on bad arguments or files.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.ops.broker import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Conversation,
    Final,
    Usage,
    err,
    load_signing_key,
    make_client,
    print_reply,
)

TOKEN_ENV = "EDGE_AGENT_UPLOAD_TOKEN"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _when(value: str, name: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise Usage(f"--{name}: not an ISO-8601 time: {value!r}") from None
    if dt.tzinfo is None:
        raise Usage(f"--{name}: give a timezone, e.g. 2026-11-25T08:10:00Z")
    return dt


def _send(args: argparse.Namespace, command: str, body: dict[str, Any], nodes: list[str], fleet: bool,
          final: Final, banner: str) -> int:
    """Signs ``body`` for each node (or once for every node: ``fleet``), sends it, follows the replies."""
    from edge_agent.commands.signing import FLEET, sign_command

    key = load_signing_key(args.key)
    rid = str(body["request_id"])
    if fleet:
        one = sign_command(body, key, args.key_id, ttl_s=args.ttl, node_id=FLEET, command=command)
        bodies = {n: one for n in nodes}
    else:
        bodies = {n: sign_command(body, key, args.key_id, ttl_s=args.ttl, node_id=n, command=command) for n in nodes}
    client = make_client(args, command)
    conv = Conversation(args.prefix, command, rid, final)
    print(banner, flush=True)
    try:
        finished = conv.run(client, args, bodies, args.timeout, print_reply(len(nodes) > 1))
    except ConnectionError as exc:
        err(str(exc))
        return EXIT_FAILURE
    if not finished:
        late = [n for n, rs in conv.replies.items() if not any(final(r) for r in rs)]
        err(f"no final reply within {args.timeout:.0f} s from: {', '.join(late)}")
        return EXIT_FAILURE
    return EXIT_OK if conv.all_ok() else EXIT_FAILURE


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args))
    except Usage as exc:
        err(str(exc))
        return EXIT_USAGE


# -- request-clip -----------------------------------------------------------------------------------------


def _clip(args: argparse.Namespace) -> int:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise Usage(f"cannot read --token-file: {exc.strerror or exc}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise Usage(f"no upload token: give --token-file FILE or set {TOKEN_ENV} (never on the command line)")
    if args.last is not None:
        end = datetime.now(UTC) - timedelta(seconds=1)
        start = end - timedelta(seconds=args.last)
    elif args.start and args.end:
        start, end = _when(args.start, "start"), _when(args.end, "end")
    else:
        raise Usage("give --start and --end, or --last SECONDS")
    rid = args.request_id or f"clip-{secrets.token_hex(6)}"
    body: dict[str, Any] = {"request_id": rid, "camera": args.camera, "start": _iso(start), "end": _iso(end),
                            "agency": args.agency, "purpose": args.purpose, "operator": args.operator,
                            "upload_url": args.upload_url, **_token_field(args, token, rid)}
    banner = (f"request {rid}: {body['camera']} {body['start']}..{body['end']} for {args.agency} "
              f"({args.operator}), purpose {args.purpose} -> {args.prefix}/{args.node}/cmd/clip")

    def final(r: dict[str, Any]) -> bool:
        return not r.get("ok") or r.get("state") in ("done", "failed")

    rc = _send(args, "clip", body, [args.node], False, final, banner)
    return rc


def _token_field(args: argparse.Namespace, token: str, request_id: str) -> dict[str, str]:
    """The token sealed to the node's public key, or in clear only when asked for by name."""
    from edge_agent.core.keys import KeyFileError, load_public_key
    from edge_agent.core.sealing import SealError, context_for, seal

    if args.node_key is None:
        if not args.token_in_clear:
            raise Usage("give --node-key NODE.pub (the node's public key: the token is sealed to it), or "
                        "--token-in-clear for a node with clips.require_sealed_token = false")
        return {"upload_token": token}
    try:
        return {"upload_token_sealed": seal(token, load_public_key(args.node_key), context_for(args.node, request_id))}
    except (KeyFileError, SealError) as exc:
        raise Usage(f"--node-key: {exc}") from None


def cmd_request_clip(args: argparse.Namespace) -> int:
    return _run(_clip, args)


# -- hotlist --------------------------------------------------------------------------------------------------


def _plates(args: argparse.Namespace) -> list[Any]:
    plates: list[Any] = list(args.plate or [])
    if args.plates_file is not None:
        try:
            lines = args.plates_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise Usage(f"cannot read --plates-file: {exc}") from None
        for line in lines:
            text, _, reason = line.partition(",")
            if text.strip() and not text.lstrip().startswith("#"):
                plates.append({"text": text.strip(), "reason": reason.strip()} if reason.strip() else text.strip())
    if args.action != "delete" and not plates:
        raise Usage(f"--action {args.action} needs plates: --plate TEXT (repeatable) or --plates-file FILE")
    return plates


def _hotlist(args: argparse.Namespace) -> int:
    rid = args.request_id or f"hotlist-{secrets.token_hex(6)}"
    body: dict[str, Any] = {"request_id": rid, "list_id": args.list_id, "action": args.action}
    if args.action != "delete":
        body["plates"] = _plates(args)
    shown = f"{len(body.get('plates', []))} plates" if args.action != "delete" else "the whole list"
    banner = (f"hotlist {rid}: {args.action} {shown} in {args.list_id!r} -> "
              f"{', '.join(args.node)}{' (signed for every node)' if args.fleet else ''}")
    return _send(args, "hotlist", body, list(args.node), args.fleet, lambda _r: True, banner)


def cmd_hotlist(args: argparse.Namespace) -> int:
    return _run(_hotlist, args)


# -- config ---------------------------------------------------------------------------------------------------


def _value(text: str) -> Any:
    """``30`` -> 30, ``[[0,0],[1,0],[1,1]]`` -> a list, ``true`` -> True; anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _config(args: argparse.Namespace) -> int:
    set_: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Usage(f"--set {item!r}: give KEY=VALUE, e.g. --set motion.threshold=30")
        set_[key.strip()] = _value(value.strip())
    reset = list(args.reset or [])
    if not set_ and not reset:
        raise Usage("nothing to change: give --set KEY=VALUE and/or --reset KEY")
    rid = args.request_id or f"config-{secrets.token_hex(6)}"
    body: dict[str, Any] = {"request_id": rid, "set": set_, "reset": reset}
    if args.dry_run:
        body["dry_run"] = True
    banner = f"config {rid}: set {set_} reset {reset}{' (dry run)' if args.dry_run else ''} -> {args.node}"

    def final(r: dict[str, Any]) -> bool:
        # The first reply says "pending self-check"; the final one "committed" or "rolled back".
        return not r.get("ok") or r.get("state") not in ("pending self-check",)

    return _send(args, "config", body, [args.node], False, final, banner)


def cmd_config(args: argparse.Namespace) -> int:
    return _run(_config, args)


def add_parsers(osub: Any, add_broker: Any, add_signing: Any) -> None:
    rq = osub.add_parser("request-clip", help="sign and send a clip request, print the node's replies",
                         description="Sign a cmd/clip for one node, send it, print each reply until done or "
                                     "failed. Exit 0 on done.")
    rq.add_argument("--node", required=True, help="node_id of the pole")
    rq.add_argument("--agency", required=True, help="who asks (recorded in the manifest and the audit log)")
    rq.add_argument("--purpose", required=True,
                    help="why: the case or complaint reference the footage is for, e.g. 'Proc. 1234/2026' "
                         "(1-128 characters; signed into the manifest and kept in the audit log)")
    rq.add_argument("--operator", required=True,
                    help="who in the agency asked, e.g. 'Isp. M. Rossi, matr. 4711' (1-128 characters; signed "
                         "into the manifest and kept in the audit log)")
    rq.add_argument("--upload-url", required=True,
                    help="the agency's tus 1.0 creation endpoint (https://...), where the clip and manifest go")
    rq.add_argument("--token-file", type=Path, default=None,
                    help=f"file holding the upload bearer token (or set {TOKEN_ENV}; never on the command line)")
    rq.add_argument("--node-key", type=Path, default=None,
                    help="the node's public key (NODE.pub, from 'edge-agent provision'): the token is sealed to "
                         "it, so only that node can read it")
    rq.add_argument("--token-in-clear", action="store_true",
                    help="send the token unsealed (only a node with clips.require_sealed_token = false takes it)")
    rq.add_argument("--camera", default="cam0", help="the node's recorder.camera_id (default: %(default)s)")
    rq.add_argument("--start", help="ISO-8601 with timezone")
    rq.add_argument("--end", help="ISO-8601 with timezone")
    rq.add_argument("--last", type=float, default=None, help="instead of --start/--end: the last N seconds")
    add_signing(rq, 600.0)
    add_broker(rq)
    rq.set_defaults(func=cmd_request_clip)

    hl = osub.add_parser("hotlist", help="sign and send a hotlist change to one or more nodes",
                         description="Sign a cmd/hotlist, send it to each --node, print each node's reply. "
                                     "Plates: --plate TEXT (repeatable) and/or --plates-file FILE (one per "
                                     "line, 'TEXT' or 'TEXT,reason'; # starts a comment).")
    hl.add_argument("--node", action="append", required=True, help="node_id (repeatable)")
    hl.add_argument("--fleet", action="store_true",
                    help='sign once with node_id "*" (valid on every node) instead of once per node')
    hl.add_argument("--list-id", required=True, help="the list (1-64 of A-Z a-z 0-9 _ . -)")
    hl.add_argument("--action", choices=("replace", "add", "remove", "delete"), required=True)
    hl.add_argument("--plate", action="append", help="a plate text (repeatable)")
    hl.add_argument("--plates-file", type=Path, default=None, help="plates, one per line: TEXT or TEXT,reason")
    add_signing(hl)
    add_broker(hl)
    hl.set_defaults(func=cmd_hotlist)

    cf = osub.add_parser("config", help="sign and send a runtime configuration change to a node",
                         description="Sign a cmd/config, send it, print the replies until 'committed' or "
                                     "'rolled back' (docs/mqtt.md, cmd/config).")
    cf.add_argument("--node", required=True, help="node_id of the pole")
    cf.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="a runtime key and its value as JSON (e.g. motion.threshold=30); repeatable")
    cf.add_argument("--reset", action="append", metavar="KEY", help="back to the node's file value; repeatable")
    cf.add_argument("--dry-run", action="store_true", help="only validate on the node")
    add_signing(cf, 120.0)
    add_broker(cf)
    cf.set_defaults(func=cmd_config)
