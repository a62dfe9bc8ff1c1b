# SPDX-License-Identifier: Apache-2.0
"""The operations room's tools: ``edge-agent ops keygen | request-clip | hotlist | config | monitor |
verify-clip`` and the node-side check ``edge-agent audit verify``.

``broker`` holds the one connection setup every tool shares (TLS client certificate, MQTT 5) and the
send-and-follow of signed commands; ``signed`` the three signed commands; ``monitor`` the fleet table;
``files`` what works on files only (keys, clips, audit logs).
"""

from __future__ import annotations

from typing import Any

from edge_agent.ops.broker import add_broker_args, add_signing_args
from edge_agent.ops.files import add_audit_parser, add_file_parsers
from edge_agent.ops.monitor import add_parser as add_monitor_parser
from edge_agent.ops.signed import add_parsers as add_signed_parsers


def add_commands(sub: Any) -> None:
    """Adds ``audit`` and ``ops`` to the edge-agent command line."""
    add_audit_parser(sub)
    ops = sub.add_parser("ops", help="operations-room tools: keys, signed commands, fleet monitor, clip checks",
                         description="Operations-room tools (docs/mqtt.md, docs/clips.md).")
    osub = ops.add_subparsers(dest="ops_command", required=True, metavar="ACTION")
    add_file_parsers(osub)
    add_signed_parsers(osub, add_broker_args, add_signing_args)
    add_monitor_parser(osub, add_broker_args)
