"""The bottom layer: small shared types and leaf helpers that every other layer may import.

``types`` (Event, Command and its refusals, HotlistMatch, PipelineStats), ``formats`` (the country plate
layouts: one home), ``clock`` (capture clock and sync probe), ``keys`` (Ed25519 key files and the node
identity), ``redact`` (credentials kept out of logs), ``atomic_file``. Nothing here imports anything
from edge_agent outside ``core``.
"""
