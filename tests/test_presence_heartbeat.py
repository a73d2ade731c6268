"""A process's heartbeat makes its presence rows match its sockets, a bounded piece at a time."""

from __future__ import annotations

import pytest

from messaging.domain import presence
from messaging.models import SocketPresence

pytestmark = pytest.mark.django_db


def test_rows_whose_clean_up_never_ran_go_a_bounded_number_per_beat(alice, bob):
    # After a mass disconnect: hundreds of rows whose sockets the process no longer holds.
    for n in range(presence.GHOSTS_PER_BEAT + 50):
        owner = alice if n % 2 else bob
        presence.socket_opened(user=owner, channel_name=f"gone-{n}", process="p1")
    presence.socket_opened(user=alice, channel_name="kept", process="p1")
    held = {"kept": alice.pk}

    presence.sockets_heartbeat(process="p1", sockets=held)
    assert SocketPresence.objects.count() == 51  # 250 ghosts, 200 gone, the kept socket
    presence.sockets_heartbeat(process="p1", sockets=held)
    assert list(SocketPresence.objects.values_list("channel_name", flat=True)) == ["kept"]
    assert presence.open_socket_count(user=alice) == 1
    assert presence.open_socket_count(user=bob) == 0


def test_a_socket_whose_row_was_swept_is_recorded_again(alice):
    presence.sockets_heartbeat(process="p2", sockets={"still-open": alice.pk})
    assert presence.open_socket_count(user=alice) == 1
