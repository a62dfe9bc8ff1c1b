"""What a technician uses on the pole, and the service around the daemon: ``provision`` (keys and
secrets), ``doctor`` (end-to-end checks), ``preflight`` (the start-up checks ``check-config`` and
``run`` share) and ``systemd_notify`` (readiness, watchdog, journal logging)."""
