# SPDX-License-Identifier: Apache-2.0
"""``edge-agent ops monitor``: the fleet at a glance, from the retained ``status`` and ``health`` of every node
(and the plates and alerts seen while it runs).

A node is ``down`` when its status says ``offline`` (its Last Will) and ``stale`` when its last health is
older than ``--stale-after``: after a broker crash a retained ``online`` can outlive the node, so the
age of the health is what counts. ``--once --json`` prints one JSON document and exits 1 when any node
is down, stale or missing (``--expect``), so a cron job or a monitoring system can call it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.ops.broker import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Usage, connect, err, make_client, parse_json

_DOWN = ("down", "stale", "missing")


@dataclass
class NodeView:
    node: str
    status: str | None = None
    health: dict[str, Any] = field(default_factory=dict)
    last_plate: str | None = None
    last_plate_at: float | None = None
    alerts: int = 0


def _ts(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _age(ts: float | None, now: float) -> float | None:
    return None if ts is None else round(max(0.0, now - ts), 1)


def _get(d: dict[str, Any], *path: str) -> Any:
    cur: Any = d
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    return cur


class Fleet:
    """What the monitor knows, built from messages; every message is checked before it is believed."""

    def __init__(self, prefix: str, stale_after_s: float, expect: list[str]) -> None:
        self.prefix = prefix
        self.stale_after_s = stale_after_s
        self.nodes: dict[str, NodeView] = {n: NodeView(n) for n in expect}
        self.expected = set(expect)
        self._lock = threading.Lock()

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        base = self.prefix.split("/")
        if parts[:len(base)] != base or len(parts) < len(base) + 2:
            return
        node, kind = parts[len(base)], "/".join(parts[len(base) + 1:])
        if not node or len(node) > 64:
            return
        with self._lock:
            view = self.nodes.setdefault(node, NodeView(node))
            if kind == "status":
                text = payload.decode("utf-8", "replace").strip()[:16]
                view.status = text if text in ("online", "offline") else f"? {text}"
            elif kind == "health":
                h = parse_json(payload)
                if isinstance(h, dict):
                    view.health = h
            elif kind == "events/plate":
                e = parse_json(payload)
                if isinstance(e, dict):
                    # A pass with no readable plate has no text: show that it happened, not "None".
                    plate = e.get("text") if e.get("read_status") != "unread" else None
                    view.last_plate = plate[:16] if isinstance(plate, str) and plate else "(unread)"
                    view.last_plate_at = _ts(e.get("ts")) or time.time()
            elif kind == "events/alert":
                view.alerts += 1

    def rows(self, now: float) -> list[dict[str, Any]]:
        with self._lock:
            views = sorted(self.nodes.values(), key=lambda v: v.node)
            return [self._row(v, now) for v in views]

    def _row(self, v: NodeView, now: float) -> dict[str, Any]:
        h = v.health
        health_age = _age(_ts(h.get("ts")), now) if h else None
        if v.status is None and not h:
            state = "missing"
        elif v.status == "offline":
            state = "down"
        elif health_age is None or health_age > self.stale_after_s:
            state = "stale"
        else:
            state = "online"
        problems: list[str] = []
        if h:
            sc = h.get("self_check")
            if isinstance(sc, dict) and sc.get("ok") is False:
                problems += [str(p)[:80] for p in sc.get("problems", [])][:3] or ["self-check failed"]
            dead = _get(h, "threads", "dead")
            if dead:
                problems.append(f"dead threads: {dead}")
            if _get(h, "camera", "state") not in ("ok", None):
                problems.append(f"camera {_get(h, 'camera', 'state')}: {str(_get(h, 'camera', 'error'))[:60]}")
            if _get(h, "clock", "synced") is False:
                problems.append("clock not synchronised")
            oldest = _get(h, "outbox", "oldest_age_s")
            if isinstance(oldest, int | float) and oldest > 300:
                problems.append(f"outbox backlog {oldest:.0f} s old")
            audit = _get(h, "audit", "state")
            if isinstance(audit, str) and audit != "ok":
                problems.append(f"audit log {audit[:80]}")
            if _get(h, "link", "publish_refused"):
                problems.append(f"publishes refused: {_get(h, 'link', 'last_refusal')}")
        if v.alerts:
            problems.append(f"{v.alerts} hotlist alert(s) seen")
        return {
            "node": v.node, "state": state, "status": v.status, "health_age_s": health_age,
            "camera": _get(h, "camera", "state"), "link": _get(h, "link", "state"),
            "outbox_depth": _get(h, "outbox", "depth"), "outbox_oldest_s": _get(h, "outbox", "oldest_age_s"),
            "clock_synced": _get(h, "clock", "synced"), "self_check_ok": _get(h, "self_check", "ok"),
            "plates_published": _get(h, "plates", "published"),
            "last_plate": v.last_plate, "last_plate_age_s": _age(v.last_plate_at, now),
            "alerts": problems,
        }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.0f}{unit}"
    return f"{value}{unit}"


def render(rows: list[dict[str, Any]], now: float) -> str:
    head = ("NODE", "STATE", "HEALTH AGE", "CAMERA", "LINK", "OUTBOX", "OLDEST", "CLOCK", "SELF-CHECK",
            "LAST PLATE", "ALERTS")
    table = [head] + [(
        r["node"], r["state"].upper() if r["state"] in _DOWN else r["state"], _fmt(r["health_age_s"], " s"),
        _fmt(r["camera"]), _fmt(r["link"]), _fmt(r["outbox_depth"]), _fmt(r["outbox_oldest_s"], " s"),
        _fmt(r["clock_synced"]), _fmt(r["self_check_ok"]),
        f"{r['last_plate']} {_fmt(r['last_plate_age_s'], ' s')} ago" if r["last_plate"] else "-",
        "; ".join(r["alerts"]) or "-",
    ) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + str(row[-1])
             for row in table]
    down = sum(r["state"] in _DOWN for r in rows)
    stamp = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")
    return "\n".join([f"edge-agent fleet, {len(rows)} node(s), {down} down or stale  ({stamp})", *lines])


def cmd_monitor(args: argparse.Namespace) -> int:
    try:
        client = make_client(args, "monitor")
    except Usage as exc:
        err(str(exc))
        return EXIT_USAGE
    fleet = Fleet(args.prefix, args.stale_after, list(args.expect or []))
    topics = [f"{args.prefix}/+/{k}" for k in ("status", "health", "events/plate", "events/alert")]
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe([(t, 1) for t in topics])

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: fleet.on_message(msg.topic, bytes(msg.payload))
    try:
        connect(client, args)
    except ConnectionError as exc:
        err(str(exc))
        return EXIT_FAILURE
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if not subscribed.wait(10):
            err("the broker did not confirm the subscriptions (check the ACL: the monitor reads status, health "
                "and events of every node)")
            return EXIT_FAILURE
        if args.once:
            stop.wait(args.wait)  # retained status and health arrive at once; the wait catches the stragglers
            now = time.time()
            rows = fleet.rows(now)
            if args.json:
                print(json.dumps({"ts": now, "stale_after_s": args.stale_after, "nodes": rows}, indent=1))
            else:
                print(render(rows, now))
            if not rows:
                err("no node seen: nothing retained under " + f"{args.prefix}/+/status or health")
                return EXIT_FAILURE
            return EXIT_FAILURE if any(r["state"] in _DOWN for r in rows) else EXIT_OK
        while not stop.is_set():
            text = render(fleet.rows(time.time()), time.time())
            # In place: home, clear below; a pipe gets plain successive tables.
            sys.stdout.write(("\x1b[H\x1b[J" if sys.stdout.isatty() else "\n") + text + "\n")
            sys.stdout.flush()
            stop.wait(args.interval)
        return EXIT_OK
    finally:
        client.loop_stop()
        client.disconnect()


def add_parser(osub: Any, add_broker: Any) -> None:
    mo = osub.add_parser("monitor", help="a live table of the fleet from retained status and health",
                         description="A live table of every node (status, age of the last health, camera, link, "
                                     "outbox, clock, self-check, last plate, alerts), refreshed in place. "
                                     "--once --json prints one JSON document for scripts and exits 1 when a "
                                     "node is down, stale or missing.")
    mo.add_argument("--once", action="store_true", help="print once and exit (1 when a node is down or stale)")
    mo.add_argument("--json", action="store_true", help="with --once: JSON instead of the table")
    mo.add_argument("--stale-after", type=float, default=120.0,
                    help="seconds after which a node's last health makes it stale (default: %(default)s; "
                         "set above the nodes' health.interval_s)")
    mo.add_argument("--wait", type=float, default=3.0,
                    help="with --once: seconds to collect messages first (default: %(default)s)")
    mo.add_argument("--interval", type=float, default=2.0, help="refresh period in seconds (default: %(default)s)")
    mo.add_argument("--expect", action="append", metavar="NODE",
                    help="a node that must be there (repeatable): missing counts as down")
    add_broker(mo)
    mo.set_defaults(func=cmd_monitor)

