"""The link to the operations room: publishes the outbox over MQTT and receives commands.

Delivery is at-least-once and in ``seq`` order. Each outbox event is handed to
paho once per process (again only after the broker refused it, below); paho keeps it
until the broker's PUBACK and re-sends its in-flight messages in order after a
reconnect. Only a PUBACK that accepts the event deletes it from the outbox, so a
crash before it means the event is sent again after restart (consumers de-duplicate
by ``event_id``). docs/mqtt.md documents the contract.

Under MQTT 5 a PUBACK can also say no (reason code >= 0x80: not authorized, quota exceeded).
Such an event stays in the outbox; the link then holds back, waits for the answers still
outstanding, and retries from the oldest refused event, one at a time with backoff, until the
broker takes one: so order is kept and nothing is acknowledged that the broker did not accept.
MQTT 3.1.1 has no such answer: a broker that drops a publish still acknowledges it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.config import Config, MqttConfig
from edge_agent.core.types import PipelineStats, utc_iso
from edge_agent.link.outbox import Outbox, Pending

log = logging.getLogger(__name__)

CommandSink = Callable[[str, bytes], None]
_F = TypeVar("_F", bound=Callable[..., None])

# A refusal repeats for every event while the ACL stays wrong: one log line per reason and minute is enough.
REFUSAL_LOG_INTERVAL_S = 60.0
# Topics of status/health/reply publishes waiting for their PUBACK; bounded in case paho never answers one.
_MAX_DIRECT = 10_000


def _guarded(method: _F) -> _F:
    """A paho callback that cannot kill the network thread: paho re-raises a callback's exception in its
    loop, which ends the thread: no more PUBACKs, no commands, while the process looks alive."""

    @functools.wraps(method)
    def wrapper(self: MqttLink, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception:
            self._stats.callback_errors += 1
            log.exception("mqtt: %s failed; the network thread carries on", method.__name__)

    return wrapper  # type: ignore[return-value]


def apply_credentials(client: mqtt.Client, m: MqttConfig) -> None:
    """Username/password file and TLS (CA, client certificate) from the config, on any paho client."""
    if m.username:
        password = m.password_file.read_text(encoding="utf-8").strip() if m.password_file else None
        client.username_pw_set(m.username, password)
    if m.tls is not None:
        t = m.tls
        client.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None,
                       certfile=str(t.cert_file) if t.cert_file else None,
                       keyfile=str(t.key_file) if t.key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if t.insecure_skip_hostname_check:
            client.tls_insecure_set(True)


class Topics:
    def __init__(self, prefix: str, node_id: str) -> None:
        base = f"{prefix}/{node_id}"
        self.base = base
        self.status = f"{base}/status"
        self.health = f"{base}/health"
        self.cmd_filter = f"{base}/cmd/+"
        self.cmd_prefix = f"{base}/cmd/"

    def event(self, kind: str) -> str:
        return f"{self.base}/events/{kind}"

    def reply(self, request_id: str) -> str:
        return f"{self.base}/reply/{request_id}"


def reason_text(rc: ReasonCode) -> str:
    return f"{rc} (0x{rc.value:02X})"


@dataclass(frozen=True, slots=True)
class _Handed:
    """An outbox event given to paho and not yet answered."""

    seq: int
    topic: str
    urgent: bool


class MqttLink:
    def __init__(self, cfg: Config, outbox: Outbox, stats: PipelineStats, on_command: CommandSink) -> None:
        self._cfg = cfg.mqtt
        self._outbox = outbox
        self._stats = stats
        self._on_command = on_command
        self.topics = Topics(cfg.mqtt.prefix, cfg.node_id)
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._connected = False
        self._ever_connected = False
        self._fail_logged = False
        self._inflight: dict[int, _Handed] = {}  # paho mid -> event; only the pump thread touches it
        self._acked: deque[tuple[int, ReasonCode]] = deque()  # (mid, PUBACK reason) from the network thread
        self._handed_seq = 0
        # After a refused event (MQTT 5): nothing new is handed out until _hold_until, then one probe at a time.
        self._hold_until: float | None = None
        self._backoff = 0.0
        self._probe_seq: int | None = None
        self._rewind_to: int | None = None  # oldest refused non-urgent seq: the publisher resumes there
        self._direct: dict[int, str] = {}  # mid -> topic of status/health/reply publishes
        self._direct_lock = threading.Lock()
        self._resubscribe_at: float | None = None  # while the cmd subscription is refused: when to ask again
        self._status_mid: int | None = None
        self._last_logged: dict[str, float] = {}  # refusal reason -> when it was last logged
        self._unlogged: dict[str, int] = {}  # refusals per reason since that line
        stats.link_protocol = cfg.mqtt.protocol
        self._thread = threading.Thread(target=self._pump, name="mqtt-pump", daemon=True)
        self._client = self._make_client(cfg)

    def _make_client(self, cfg: Config) -> mqtt.Client:
        m = self._cfg
        client_id = m.client_id or f"edge-agent-{cfg.node_id}"
        # A persistent session lets the broker keep our command subscription and queued QoS 1 commands
        # while the radio link is down (MQTT 5: clean_start=False with a session expiry, set on connect).
        if m.protocol == "5":
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                            protocol=mqtt.MQTTv311)
        c.reconnect_delay_set(min_delay=max(1, int(m.reconnect_min_s)), max_delay=max(1, int(m.reconnect_max_s)))
        c.max_inflight_messages_set(m.max_inflight)
        c.max_queued_messages_set(0)
        apply_credentials(c, m)
        c.will_set(self.topics.status, "offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        m = self._cfg
        log.info("mqtt: connecting to %s:%d as %s (MQTT %s)", m.host, m.port, self.topics.base, m.protocol)
        if m.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = m.session_expiry_s
            # clean_start=False on every connect, the first included: commands queued for this node while
            # the agent was stopped or restarting are still delivered. paho reuses these for reconnects.
            self._client.connect_async(m.host, m.port, keepalive=m.keepalive_s, clean_start=False, properties=props)
        else:
            self._client.connect_async(m.host, m.port, keepalive=m.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 3.0, flush_s: float = 2.0) -> None:
        # The last events (a motion end, tracks still open when the camera stopped) are made while
        # stopping: with the link up, send them now rather than leave them on disk until the next start.
        deadline = time.monotonic() + flush_s
        self.notify()
        # While the broker refuses events there is nothing to wait for.
        while (self._connected and self._outbox.depth > 0 and self._hold_until is None
               and time.monotonic() < deadline):
            time.sleep(0.02)
        self._stop.set()
        self.notify()
        self._thread.join(timeout)
        if self._connected:
            info = self._client.publish(self.topics.status, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
            self._drain_acks()
        self._client.disconnect()
        self._client.loop_stop()

    def notify(self) -> None:
        """Wakes the publisher: a new event is in the outbox."""
        with self._wake:
            self._wake.notify()

    @property
    def connected(self) -> bool:
        return self._connected

    def dead_threads(self) -> list[str]:
        """Names of this link's threads that should run and do not (checked by the watchdog)."""
        dead = []
        if self._thread.ident is not None and not self._thread.is_alive() and not self._stop.is_set():
            dead.append("mqtt-pump")
        # paho's network thread (loop_start) is only reachable as an attribute; None before start and after stop.
        net = getattr(self._client, "_thread", None)
        if self._thread.ident is not None and not self._stop.is_set() and (net is None or not net.is_alive()):
            dead.append("mqtt-network")
        return dead

    # -- paho callbacks (network thread) ---------------------------------------------------------

    @_guarded
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._stats.link_state = f"refused: {rc}"
            if not self._fail_logged:
                log.warning("mqtt: broker %s:%d refused the connection: %s", self._cfg.host, self._cfg.port, rc)
                self._fail_logged = True
            return
        if self._ever_connected:
            self._stats.link_reconnects += 1
        self._ever_connected = True
        self._fail_logged = False
        self._connected = True
        self._stats.link_state = "connected"
        log.info("mqtt: connected to %s:%d", self._cfg.host, self._cfg.port)
        # Not through _publish_direct: its lock may be held by a thread that waits inside paho for the lock
        # paho holds around this callback. This thread answers the PUBACK, after this assignment.
        self._status_mid = client.publish(self.topics.status, "online", qos=1, retain=True).mid
        client.subscribe(self.topics.cmd_filter, qos=1)
        self.notify()

    @_guarded
    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._stats.link_state = "unreachable"
        if not self._fail_logged:
            log.warning("mqtt: broker %s:%d unreachable; events are queued in the outbox and retried "
                        "with backoff (this is logged once until the link comes back)", self._cfg.host,
                        self._cfg.port)
            self._fail_logged = True

    @_guarded
    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        was = self._connected
        self._connected = False
        if self._stop.is_set():
            self._stats.link_state = "stopped"
            return
        self._stats.link_state = "disconnected"
        if was:
            log.warning("mqtt: link lost (%s); reconnecting with backoff, events stay queued", rc)
            self._fail_logged = True

    @_guarded
    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        # paho calls this holding its own message lock, which publishers take while holding _direct_lock:
        # take only the wake-up lock here and hand the answer to the pump thread.
        self._acked.append((mid, rc))
        self.notify()

    @_guarded
    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        # The cmd filter is the only subscription this client makes.
        refused = [rc for rc in rcs if rc.is_failure]
        if not refused:
            self._stats.link_subscription = "granted"
            self._resubscribe_at = None
            return
        reason = reason_text(refused[0])
        self._stats.link_subscription = f"refused: {reason}"
        # Asked again now and then: an ACL fixed at the broker then takes effect without a visit.
        self._resubscribe_at = time.monotonic() + self._cfg.reconnect_max_s
        if self._may_log(f"subscribe {reason}"):
            log.error("mqtt: the broker refused the subscription to %s: %s: no command will reach this node; "
                      "the broker's ACL must let this node's user read %s# (asked again every %g s)",
                      self.topics.cmd_filter, reason, self.topics.cmd_prefix, self._cfg.reconnect_max_s)

    @_guarded
    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(self.topics.cmd_prefix):
            self._on_command(msg.topic[len(self.topics.cmd_prefix):], bytes(msg.payload))

    # -- publisher thread ------------------------------------------------------------------------

    def _drain_acks(self) -> None:
        seqs: list[int] = []
        while self._acked:
            mid, rc = self._acked.popleft()
            handed = self._inflight.pop(mid, None)
            if handed is None:
                with self._direct_lock:
                    topic = self._direct.pop(mid, None)
                if topic is None and mid == self._status_mid:
                    topic = self.topics.status
                if rc.is_failure and topic is not None:
                    self._refused(topic, rc, None)
                continue
            if rc.is_failure:
                self._refused(handed.topic, rc, handed)
                continue
            seqs.append(handed.seq)
            if handed.seq == self._probe_seq:
                self._hold_until, self._probe_seq, self._backoff = None, None, 0.0
                log.info("mqtt: the broker accepts events again; resuming from seq %d", handed.seq)
        self._outbox.ack(seqs)

    def _refused(self, topic: str, rc: ReasonCode, handed: _Handed | None) -> None:
        reason = reason_text(rc)
        self._stats.link_publish_refused += 1
        self._stats.link_last_refusal = {"topic": topic, "reason": reason, "at": utc_iso(time.time())}
        if handed is not None:
            if not handed.urgent:
                self._rewind_to = handed.seq if self._rewind_to is None else min(self._rewind_to, handed.seq)
            # Back off once per round, not once per event of the window that was in flight.
            if self._hold_until is None or handed.seq == self._probe_seq:
                lo, hi = self._cfg.reconnect_min_s, self._cfg.reconnect_max_s
                self._backoff = lo if self._hold_until is None else min(hi, max(lo, self._backoff * 2))
                self._hold_until = time.monotonic() + self._backoff
                self._probe_seq = None
        if self._may_log(reason):
            what = ("the event stays in the outbox; events are held back and retried with backoff"
                    if handed is not None else "not retried (status and health are sent again; a reply is lost)")
            hint = (f" Check that the broker's ACL lets this node's user (with client certificates: the "
                    f"certificate's CN) write {self.topics.base}/..." if rc.value == 0x87 else "")
            log.error("mqtt: the broker refused a publish to %s: %s: %s.%s (%d refusal(s) with this reason since "
                      "the last such line; logged at most once a minute)",
                      topic, reason, what, hint, self._unlogged.pop(reason, 1))

    def _may_log(self, key: str) -> bool:
        now = time.monotonic()
        self._unlogged[key] = self._unlogged.get(key, 0) + 1
        last = self._last_logged.get(key)
        if last is not None and now - last < REFUSAL_LOG_INTERVAL_S:
            return False
        self._last_logged[key] = now
        return True

    def _pump(self) -> None:
        window = self._cfg.max_inflight * 2
        while not self._stop.is_set():
            wait = 0.5
            try:
                self._drain_acks()
                if self._connected and self._resubscribe_at is not None and time.monotonic() >= self._resubscribe_at:
                    self._resubscribe_at = None
                    self._client.subscribe(self.topics.cmd_filter, qos=1)
                if self._connected and self._hold_until is not None:
                    wait = self._probe()
                elif self._connected and (room := window - len(self._inflight)) > 0:
                    urgent = self._outbox.pending_urgent([h.seq for h in self._inflight.values()], room)
                    self._hand(urgent, urgent=True)
                    if room - len(urgent) > 0:
                        last = self._hand(self._outbox.pending(self._handed_seq, room - len(urgent)), urgent=False)
                        self._handed_seq = self._handed_seq if last is None else last
            except Exception:
                # Events stay in the outbox: nothing is lost by going round again a moment later.
                self._stats.callback_errors += 1
                log.exception("mqtt: publisher error; retrying")
                self._stop.wait(1.0)
            with self._wake:
                if not self._acked:
                    self._wake.wait(wait)

    def _probe(self) -> float:
        """While refused: one event at a time, after the backoff; returns how long to sleep at most."""
        assert self._hold_until is not None
        left = self._hold_until - time.monotonic()
        # Wait for every answer of the window still in flight before rewinding, or a later event could
        # be accepted ahead of an earlier refused one.
        if self._probe_seq is not None or left > 0 or self._inflight:
            return min(0.5, max(0.01, left))
        if self._rewind_to is not None:
            self._handed_seq, self._rewind_to = self._rewind_to - 1, None
        urgent = self._outbox.pending_urgent((), 1)
        if urgent:
            self._probe_seq = self._hand(urgent, urgent=True)
        else:
            last = self._hand(self._outbox.pending(self._handed_seq, 1), urgent=False)
            if last is None:
                # The refused events are gone (dropped by the outbox bounds): nothing to try.
                self._hold_until, self._backoff = None, 0.0
                return 0.5
            self._handed_seq = self._probe_seq = last
        return 0.5

    def _hand(self, events: list[Pending], *, urgent: bool) -> int | None:
        """Gives events to paho; returns the seq of the last one handed, None when none was."""
        last = None
        for ev in events:
            topic = self.topics.event(ev.type)
            info = self._client.publish(topic, ev.body, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning("mqtt: publish of seq %d failed (%s); will retry", ev.seq, info.rc)
                break
            # A PUBACK that already arrived waits in _acked until the next drain, after this.
            self._inflight[info.mid] = _Handed(ev.seq, topic, urgent)
            last = ev.seq
        return last

    # -- direct publishes ------------------------------------------------------------------------

    def _publish_direct(self, topic: str, payload: str, retain: bool = False) -> None:
        # The topic is kept until the PUBACK, so that a refusal can name it; the lock is held across the
        # publish so the pump cannot read the answer before the topic is recorded.
        with self._direct_lock:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            self._direct[info.mid] = topic
            while len(self._direct) > _MAX_DIRECT:
                del self._direct[next(iter(self._direct))]

    def publish_health(self, payload: dict[str, Any]) -> bool:
        """Retained health; skipped while offline (a stale backlog of health is useless)."""
        if not self._connected:
            return False
        self._publish_direct(self.topics.health, json.dumps(payload, separators=(",", ":")), retain=True)
        return True

    def reply(self, request_id: str, payload: dict[str, Any]) -> None:
        self._publish_direct(self.topics.reply(request_id), json.dumps(payload, separators=(",", ":")))
