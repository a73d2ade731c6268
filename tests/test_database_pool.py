"""The pool of PostgreSQL connections: one the server has ended is never lent."""

import copy
import time

import pytest
from django.db import connection

from chatsite.postgresql.base import DatabaseWrapper

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_connection_pool():
    """A database wrapper of its own whose pool holds exactly one connection."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 1, "timeout": 5}
    wrapper = DatabaseWrapper(settings_dict, alias="pool_test")
    yield wrapper
    wrapper.close()
    wrapper.close_pool()


def _backend_pid(wrapper: DatabaseWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_connection_the_server_ended_is_replaced_before_it_is_lent(one_connection_pool):
    first = _backend_pid(one_connection_pool)
    one_connection_pool.close()  # back to the pool, idle
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    # The server's goodbye reaches the idle connection's socket.
    time.sleep(0.3)

    second = _backend_pid(one_connection_pool)

    assert second != first
    stats = one_connection_pool.pool.get_stats()
    assert stats.get("returns_bad", 0) + stats.get("connections_lost", 0) == 1


def test_a_live_idle_connection_is_lent_again(one_connection_pool):
    first = _backend_pid(one_connection_pool)
    one_connection_pool.close()

    assert _backend_pid(one_connection_pool) == first
