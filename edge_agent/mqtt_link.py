"""The link to the operations room: publishes the outbox over MQTT and receives commands.

Delivery is at-least-once and in ``seq`` order. Each outbox event is handed to
paho once per process; paho keeps it until the broker's PUBACK and re-sends its
in-flight messages in order after a reconnect. Only the PUBACK deletes the event
from the outbox, so a crash before it means the event is sent again after restart
(consumers de-duplicate by ``event_id``). docs/mqtt.md documents the contract.
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
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.config import Config, MqttConfig
from edge_agent.health import PipelineStats
from edge_agent.outbox import Outbox, Pending

log = logging.getLogger(__name__)

CommandSink = Callable[[str, bytes], None]
_F = TypeVar("_F", bound=Callable[..., None])


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
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq; only the pump thread touches it
        self._acked_mids: deque[int] = deque()
        self._handed_seq = 0
        self._thread = threading.Thread(target=self._pump, name="mqtt-pump", daemon=True)
        self._client = self._make_client(cfg)

    def _make_client(self, cfg: Config) -> mqtt.Client:
        m = self._cfg
        client_id = m.client_id or f"edge-agent-{cfg.node_id}"
        # A persistent session (clean_session=False) lets the broker keep our command subscription
        # and queued QoS 1 commands while the radio link is down.
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
        c.on_message = self._on_message
        return c

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        log.info("mqtt: connecting to %s:%d as %s", self._cfg.host, self._cfg.port, self.topics.base)
        self._client.connect_async(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s)
        self._client.loop_start()
        self._thread.start()

    def stop(self, timeout: float = 3.0, flush_s: float = 2.0) -> None:
        # The last events (a motion end, tracks still open when the camera stopped) are made while
        # stopping: with the link up, send them now rather than leave them on disk until the next start.
        deadline = time.monotonic() + flush_s
        self.notify()
        while self._connected and self._outbox.depth > 0 and time.monotonic() < deadline:
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
        client.publish(self.topics.status, "online", qos=1, retain=True)
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
    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _rc: ReasonCode, _p: Any) -> None:
        # paho calls this holding its own message lock: take no lock of ours here (the pump thread
        # holds ours while calling publish), just hand the mid over.
        self._acked_mids.append(mid)
        self.notify()

    @_guarded
    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith(self.topics.cmd_prefix):
            self._on_command(msg.topic[len(self.topics.cmd_prefix):], bytes(msg.payload))

    # -- publisher thread ------------------------------------------------------------------------

    def _drain_acks(self) -> None:
        seqs: list[int] = []
        while self._acked_mids:
            # mids of status/health/reply publishes are not in the map and are ignored.
            seq = self._inflight.pop(self._acked_mids.popleft(), None)
            if seq is not None:
                seqs.append(seq)
        self._outbox.ack(seqs)

    def _pump(self) -> None:
        window = self._cfg.max_inflight * 2
        while not self._stop.is_set():
            try:
                self._drain_acks()
                room = window - len(self._inflight) if self._connected else 0
                if room > 0:
                    urgent = self._outbox.pending_urgent(self._inflight.values(), room)
                    self._hand(urgent)
                    if room - len(urgent) > 0:
                        self._handed_seq = self._hand(self._outbox.pending(self._handed_seq, room - len(urgent)),
                                                      self._handed_seq)
            except Exception:
                # Events stay in the outbox: nothing is lost by going round again a moment later.
                self._stats.callback_errors += 1
                log.exception("mqtt: publisher error; retrying")
                self._stop.wait(1.0)
            with self._wake:
                if not self._acked_mids:
                    self._wake.wait(0.5)

    def _hand(self, events: list[Pending], cursor: int = 0) -> int:
        """Gives events to paho; returns the seq of the last one handed (or ``cursor``)."""
        for ev in events:
            info = self._client.publish(self.topics.event(ev.type), ev.body, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning("mqtt: publish of seq %d failed (%s); will retry", ev.seq, info.rc)
                break
            # A PUBACK that already arrived waits in _acked_mids until the next drain, after this.
            self._inflight[info.mid] = ev.seq
            cursor = ev.seq
        return cursor

    # -- direct publishes ------------------------------------------------------------------------

    def publish_health(self, payload: dict[str, Any]) -> bool:
        """Retained health; skipped while offline (a stale backlog of health is useless)."""
        if not self._connected:
            return False
        self._client.publish(self.topics.health, json.dumps(payload, separators=(",", ":")), qos=1, retain=True)
        return True

    def reply(self, request_id: str, payload: dict[str, Any]) -> None:
        self._client.publish(self.topics.reply(request_id), json.dumps(payload, separators=(",", ":")), qos=1)
