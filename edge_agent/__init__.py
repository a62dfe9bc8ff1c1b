"""edge-agent: the plate-reading camera node daemon."""

__version__ = "0.1.0"
