"""Footage and evidence: the ``recorder`` ring buffer, ``clips`` (the ``cmd/clip`` service: request,
manifest, upload), the hash-chained ``audit`` log and what goes in it (``audit_trail``), the privacy
``retention`` that bounds every store of personal data, and ``footage`` (the wiring into the agent)."""
