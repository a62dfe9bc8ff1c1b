"""Commands from the operations room: the ``router`` (size checks, bounded queue, one handler per name),
``signing`` (Ed25519 signatures, expiry, node binding, nonces), and the handlers that change the node:
``hotlist`` (the lists the pipeline matches against) and ``remote_config`` (``cmd/config``)."""
