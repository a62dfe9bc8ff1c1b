# SPDX-License-Identifier: Apache-2.0
"""The operations room's side of the broker: one place that connects an ``ops`` tool (TLS with a client
certificate, user/password, MQTT 5) and one that sends a signed command and follows its replies.

A reply is hostile input like any message: it is size-checked and parsed inside a catch-all, and a bad
one is shown as such, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import secrets
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
MAX_REPLY_BYTES = 256 * 1024


def err(msg: str) -> None:
    print(f"edge-agent: {msg}", file=sys.stderr)


class Usage(Exception):
    """Bad arguments or files: exit 2 with the message."""


def add_broker_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("broker (the operations room's credentials)")
    g.add_argument("--host", default="localhost", help="broker host name (default: %(default)s)")
    g.add_argument("--port", type=int, default=1883, help="broker port (default: %(default)s; TLS is usually 8883)")
    g.add_argument("--prefix", default="edge", help="topic prefix, mqtt.prefix on the nodes (default: %(default)s)")
    g.add_argument("--username", default="", help="broker user name (not needed with a client certificate)")
    g.add_argument("--password-file", type=Path, default=None, help="file holding the broker password")
    g.add_argument("--ca-file", type=Path, default=None, help="CA of the broker's certificate: turns TLS on")
    g.add_argument("--cert-file", type=Path, default=None, help="client certificate (with --key-file and --ca-file)")
    g.add_argument("--key-file", type=Path, default=None, help="client certificate's private key")
    g.add_argument("--mqtt-protocol", choices=("5", "3.1.1"), default="5",
                   help="MQTT version (default: %(default)s; 3.1.1 cannot see a refused publish)")


def make_client(args: argparse.Namespace, purpose: str) -> mqtt.Client:
    """A paho client set up from the broker arguments; Usage naming the option on a bad file."""
    proto = mqtt.MQTTv5 if args.mqtt_protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-agent-ops-{purpose}-{secrets.token_hex(4)}",
                         protocol=proto)
    if (args.cert_file is None) != (args.key_file is None):
        raise Usage("--cert-file and --key-file go together")
    if args.cert_file is not None and args.ca_file is None:
        raise Usage("a client certificate needs TLS: give --ca-file too")
    try:
        if args.username:
            password = args.password_file.read_text(encoding="utf-8").strip() if args.password_file else None
            client.username_pw_set(args.username, password)
        if args.ca_file is not None:
            client.tls_set(ca_certs=str(args.ca_file),
                           certfile=str(args.cert_file) if args.cert_file else None,
                           keyfile=str(args.key_file) if args.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise Usage(f"cannot set up the broker connection: {exc}") from None
    return client


def connect(client: mqtt.Client, args: argparse.Namespace) -> None:
    """Connects and starts the network loop; Usage/ConnectionError with what went wrong."""
    try:
        client.connect(args.host, args.port)
    except ssl.SSLError as exc:
        raise ConnectionError(f"TLS with the broker {args.host}:{args.port} failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise ConnectionError(f"cannot reach the broker {args.host}:{args.port}: {exc}") from None
    client.loop_start()


def parse_json(payload: bytes) -> Any:
    """A message's JSON, or None when it is too big or not JSON."""
    if len(payload) > MAX_REPLY_BYTES:
        return None
    try:
        return json.loads(payload)
    except Exception:  # anything the parser raises: the message is junk, not a crash
        return None


Final = Callable[[dict[str, Any]], bool]


@dataclass
class Conversation:
    """Signed commands sent to nodes, and their replies until each node's final one."""

    prefix: str
    command: str
    request_id: str
    final: Final
    replies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._subscribed = threading.Event()
        self._subs = 0

    def topic(self, node: str, kind: str) -> str:
        return f"{self.prefix}/{node}/{kind}"

    def run(self, client: mqtt.Client, args: argparse.Namespace, bodies: dict[str, dict[str, Any]],
            timeout: float, show: Callable[[str, dict[str, Any]], None]) -> bool:
        """Sends ``bodies`` (node -> signed body) and waits for every final reply; False on timeout."""
        self.replies = {n: [] for n in bodies}
        pending_subs = {self.topic(n, f"reply/{self.request_id}") for n in bodies}

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            for t in sorted(pending_subs):
                c.subscribe(t, qos=1)

        def on_subscribe(*_: Any) -> None:
            with self._lock:
                self._subs += 1
                if self._subs >= len(pending_subs):
                    self._subscribed.set()

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            node = msg.topic[len(self.prefix) + 1:].split("/", 1)[0]
            reply = parse_json(bytes(msg.payload))
            if not isinstance(reply, dict) or node not in self.replies:
                show(node, {"ok": False, "error": "unreadable reply (not a JSON object, or too big)"})
                return
            show(node, reply)
            with self._lock:
                self.replies[node].append(reply)
                if all(any(self.final(r) for r in rs) for rs in self.replies.values()):
                    self._done.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        connect(client, args)
        try:
            if not self._subscribed.wait(10):
                raise ConnectionError("the broker did not confirm the reply subscription (check the ACL)")
            for node, body in bodies.items():
                client.publish(self.topic(node, f"cmd/{self.command}"), json.dumps(body), qos=1).wait_for_publish(10)
            return self._done.wait(timeout)
        finally:
            client.loop_stop()
            client.disconnect()

    def all_ok(self) -> bool:
        return all(rs and rs[-1].get("ok") is True for rs in self.replies.values())


def print_reply(multi: bool) -> Callable[[str, dict[str, Any]], None]:
    def show(node: str, reply: dict[str, Any]) -> None:
        shown = {k: v for k, v in reply.items() if k not in ("request_id", "command")}
        prefix = f"{node}: " if multi else ""
        print(prefix + json.dumps(shown, separators=(", ", ": ")), flush=True)

    return show


def load_signing_key(path: Path) -> Any:
    from edge_agent.core.keys import KeyFileError, load_private_key

    try:
        return load_private_key(path)
    except KeyFileError as exc:
        raise Usage(str(exc)) from None


def add_signing_args(p: argparse.ArgumentParser, timeout: float = 60.0) -> None:
    p.add_argument("--key", type=Path, required=True, help="operations-room private key (from 'ops keygen')")
    p.add_argument("--key-id", required=True, help="id of that key in the nodes' security.trusted_keys")
    p.add_argument("--ttl", type=float, default=300.0,
                   help="seconds the signed command stays valid (default: %(default)s; nodes accept at most "
                        "security.max_command_ttl_s)")
    p.add_argument("--timeout", type=float, default=timeout,
                   help="seconds to wait for the final reply (default: %(default)s)")
    p.add_argument("--request-id", default=None, help="default: a new random id (never reuse one)")
