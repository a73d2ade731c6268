"""Django's PostgreSQL backend, testing a pooled connection only when it may be dead.

Django's CONN_HEALTH_CHECKS makes psycopg's pool send an empty query before lending each
connection: a round trip on every database hop of every handshake, send and read. An idle
connection has nothing to read, though (the send lanes, which keep theirs, look the same way
before each batch: `ended_by_server`). When PostgreSQL restarts, or ends a backend (an
administrator, `idle_session_timeout`, a proxy), it sends an error and closes the socket,
which then reads as ready: only such a connection is tested, and a dead one is given back
for the pool to drop, so the first request after a restart still gets a live one.
"""

from __future__ import annotations

import select

from django.db import OperationalError
from django.db.backends.postgresql import base
from psycopg import Connection
from psycopg.pq import ConnStatus
from psycopg_pool import ConnectionPool


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's PostgreSQL backend; a pooled connection is tested when it may be dead."""

    def get_new_connection(self, conn_params: dict) -> Connection:
        """Return a live connection: from the pool, past any the server has closed."""
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        # At most every pooled connection dead (a restart), then one new.
        for _ in range(pool.max_size + 1):
            connection = super().get_new_connection(conn_params)
            if not ended_by_server(connection) or _answers(connection):
                return connection
            # Broken now: the pool closes it and opens another in its place.
            pool.putconn(connection)
        raise OperationalError("no live connection to the database")

    def ended_by_server(self) -> bool:
        """Say whether PostgreSQL may have ended the open connection, without asking it."""
        return self.connection is not None and ended_by_server(self.connection)


def ended_by_server(connection: Connection) -> bool:
    """Say whether an idle connection is closed or holds the server's goodbye (no round trip)."""
    try:
        if connection.closed or connection.pgconn.status != ConnStatus.OK:
            return True
        # poll, not select: a process holding thousands of sockets has descriptors past
        # select's limit of 1,024.
        poller = select.poll()
        poller.register(connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:
        return True


def _answers(connection: Connection) -> bool:
    try:
        ConnectionPool.check_connection(connection)
    except Exception:
        return False
    return True
