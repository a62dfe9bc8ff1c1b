"""The outbox: durable, strictly increasing seq across restarts, bounded with a counted drop policy."""

from __future__ import annotations

import json
from pathlib import Path

from edge_agent.core.types import PRIORITY_PLATE, Event
from edge_agent.link.outbox import Outbox


def _motion(i: int) -> Event:
    return Event("motion", {"state": "start", "i": i})


def _plate(text: str, pad: int = 0) -> Event:
    return Event("plate", {"text": text, "pad": "x" * pad}, PRIORITY_PLATE)


def test_seq_strictly_increases_across_reopen(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite3"
    ob = Outbox(db, "n1", 1000, 10**8)
    seqs = [ob.append(_motion(i)) for i in range(5)]
    ob.ack(seqs[:5])
    ob.close()
    ob = Outbox(db, "n1", 1000, 10**8)
    assert ob.append(_motion(9)) == 6, "seq continues after restart even when the outbox was empty"
    assert seqs == [1, 2, 3, 4, 5]


def test_pending_in_order_and_ack_deletes(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3", "n1", 1000, 10**8)
    for i in range(10):
        ob.append(_motion(i))
    pend = ob.pending(0, 100)
    assert [p.seq for p in pend] == list(range(1, 11))
    body = json.loads(pend[0].body)
    assert body["seq"] == 1 and body["node_id"] == "n1" and body["type"] == "motion" and body["i"] == 0
    ob.ack([1, 2, 3])
    assert next(p.seq for p in ob.pending(0, 100)) == 4
    assert ob.pending(7, 2)[0].seq == 8
    st = ob.stats()
    assert st.depth == 7 and st.last_seq == 10 and st.oldest_age_s is not None


def test_count_bound_drops_oldest_motion_never_plates(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3", "n1", 10, 10**8)
    for i in range(5):
        ob.append(_plate(f"P{i}"))
    for i in range(20):
        ob.append(_motion(i))
    for i in range(5, 10):
        ob.append(_plate(f"P{i}"))
    kinds = [p.type for p in ob.pending(0, 1000)]
    assert kinds.count("plate") == 10, "plates are never dropped by the count bound"
    assert ob.stats().dropped == {"motion": 20}


def test_disk_budget_drops_plates_only_when_exceeded(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite3"
    ob = Outbox(db, "n1", 1000, 20_000)
    for i in range(40):
        ob.append(_plate(f"P{i}", pad=900))
    st = ob.stats()
    assert st.bytes <= 20_000
    assert st.dropped.get("plate", 0) > 0
    remaining = [json.loads(p.body)["text"] for p in ob.pending(0, 1000)]
    assert remaining[-1] == "P39", "the newest plates are kept"
    ob.close()
    assert Outbox(db, "n1", 1000, 20_000).stats().dropped == st.dropped, "drop counts survive restarts"


def test_event_is_on_disk_when_append_returns(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite3"
    ob = Outbox(db, "n1", 1000, 10**8)
    ob.append(_plate("AB123CD"))
    # A second connection (as after a crash) sees it without close() on the first.
    other = Outbox(db, "n1", 1000, 10**8)
    assert [json.loads(p.body)["text"] for p in other.pending(0, 10)] == ["AB123CD"]


def test_urgent_events_come_out_ahead_of_the_backlog(tmp_path: Path) -> None:
    from edge_agent.core.types import PRIORITY_ALERT

    ob = Outbox(tmp_path / "o.sqlite3", "n1", 1000, 10**8)
    for i in range(50):
        ob.append(_motion(i))
    alert_seq = ob.append(Event("alert", {"text": "AB123CD"}, PRIORITY_ALERT))
    assert [p.seq for p in ob.pending_urgent([], 10)] == [alert_seq]
    assert [p.seq for p in ob.pending_urgent([alert_seq], 10)] == [], "already handed out"
    assert alert_seq not in [p.seq for p in ob.pending(0, 1000)], "not sent twice through the normal path"
    ob.ack([alert_seq])
    assert ob.pending_urgent([], 10) == []


def test_audit_records_are_never_dropped_by_the_bounds(tmp_path: Path) -> None:
    # Issue 13.4: audit events are evidence; the disk budget drops plates and motion first, never them.
    from edge_agent.core.types import PRIORITY_AUDIT

    ob = Outbox(tmp_path / "o.sqlite3", "n1", 10, 20_000)
    for i in range(40):
        ob.append(Event("audit", {"audit_seq": i, "pad": "x" * 500}, PRIORITY_AUDIT))
        ob.append(_plate(f"AB{i:03d}CD", pad=500))
        ob.append(_motion(i))
    kinds = [p.type for p in ob.pending_urgent([], 1000)]
    assert kinds.count("audit") == 40
    assert ob.stats().dropped.get("audit", 0) == 0 and ob.stats().dropped["plate"] > 0
