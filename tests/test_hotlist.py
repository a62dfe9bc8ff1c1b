"""Hotlists: persistence, exact and fuzzy matches, command validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent.commands.hotlist import HotlistCommand, Hotlists
from edge_agent.core.types import Command, CommandRejected


class AcceptAll:
    """Stands in for the signature check, which tests/test_signing.py covers; here the list logic is tested."""

    def verify(self, body: dict[str, Any], now: float, *, command: str, fleet: bool = False) -> str:
        assert command == "hotlist" and fleet
        return "ops-1"


def _cmd(body: dict[str, Any]) -> Command:
    return Command("hotlist", "r1", {"request_id": "r1", **body})


def test_lists_persist_and_match(tmp_path: Path) -> None:
    path = tmp_path / "hotlists.json"
    h = Hotlists(path, fuzzy=True)
    handler = HotlistCommand(h, AcceptAll())
    reply = handler(_cmd({"list_id": "stolen", "action": "replace",
                          "plates": [{"text": "ab-123 cd", "reason": "stolen 2026-11-01"}, "XY987ZW"]}))
    assert reply == {"list_id": "stolen", "action": "replace", "entries": 2}
    h2 = Hotlists(path, fuzzy=True)
    m = h2.match("AB123CD")
    assert m is not None and (m.list_id, m.kind, m.reason) == ("stolen", "exact", "stolen 2026-11-01")
    m = h2.match("AB128CD")
    assert m is not None and m.kind == "fuzzy" and m.listed_text == "AB123CD"
    assert Hotlists(path, fuzzy=False).match("AB128CD") is None
    assert h2.match("QQ111QQ") is None
    handler2 = HotlistCommand(h2, AcceptAll())
    assert handler2(_cmd({"list_id": "stolen", "action": "remove", "plates": ["XY987ZW"]}))["entries"] == 1
    assert handler2(_cmd({"list_id": "stolen", "action": "delete"}))["entries"] == 0
    assert Hotlists(path, fuzzy=True).sizes == {}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"list_id": "a/b", "action": "add", "plates": []}, "list_id"),
        ({"list_id": "x", "action": "explode", "plates": []}, "action must be"),
        ({"list_id": "x", "action": "add", "plates": "AB123CD"}, "must be a list"),
        ({"list_id": "x", "action": "add", "plates": ["../../etc"]}, "not a plate text"),
        ({"list_id": "x", "action": "add", "plates": [{"text": "AB123CD", "evil": 1}]}, "plates[0]"),
        ({"list_id": "x", "action": "add", "plates": [], "extra": True}, "unexpected field"),
    ],
)
def test_bad_commands_are_rejected_with_a_reason(tmp_path: Path, body: dict[str, Any], reason: str) -> None:
    handler = HotlistCommand(Hotlists(tmp_path / "h.json", True), AcceptAll())
    with pytest.raises(CommandRejected, match=reason.replace("[", r"\[").replace("]", r"\]")):
        handler(_cmd(body))


def test_without_trusted_keys_signed_commands_are_refused(tmp_path: Path) -> None:
    from edge_agent.commands.signing import SignedCommandVerifier

    handler = HotlistCommand(Hotlists(tmp_path / "h.json", True), SignedCommandVerifier({}, tmp_path / "n.sqlite3",
                                                                                       node_id="pole-a"))
    with pytest.raises(CommandRejected, match="no trusted keys"):
        handler(_cmd({"list_id": "x", "action": "add", "plates": []}))


def test_corrupt_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "hotlists.json"
    path.write_text("{not json")
    assert Hotlists(path, True).sizes == {}
    assert (tmp_path / "hotlists.corrupt").exists()
    path.write_text(json.dumps({"lists": {"a": {"AB123CD": ""}}}))
    assert Hotlists(path, True).sizes == {"a": 1}
