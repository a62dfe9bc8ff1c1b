"""The link to the operations room: the durable ``outbox`` (SQLite), the ``mqtt`` connection that
publishes it and receives ``cmd/*``, and the ``health`` snapshot published on ``health``."""
