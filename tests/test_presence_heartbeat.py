"""A process's heartbeat makes its presence rows match its sockets, a bounded piece at a time."""

from __future__ import annotations

import pytest

from messaging.delivery import fanout
from messaging.domain import presence, services
from messaging.domain.events import user_group
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


@pytest.mark.django_db(transaction=True)
def test_a_swept_process_records_its_sockets_again_in_a_few_batches_and_announces_them(
    make_user, django_assert_max_num_queries
):
    # Its database was away for longer than the presence TTL: another process swept all its
    # rows. Its next beat records every socket again, batched like handshakes, so that the
    # process's database work is not held up for long behind thousands of them.
    people = [make_user(username=f"p{n}") for n in range(2 * presence.REOPENED_AT_ONCE + 2)]
    for first, second in zip(people[::2], people[1::2], strict=True):
        services.message_send(sender=first, body="hi", client_id="a", to=second.username)
        services.message_send(sender=second, body="hi", client_id="b", to=first.username)
    sockets = {f"socket-{person.pk}": person.pk for person in people}

    with django_assert_max_num_queries(60):
        _, events, _ = fanout.call_collecting(
            presence.sockets_heartbeat, process="p3", sockets=sockets
        )
    assert SocketPresence.objects.filter(process="p3").count() == len(people)
    # Each of the pair hears that the other is online, whichever was recorded first.
    told = {(group, event["frame"]["user"]["id"]) for group, event in events}
    for first, second in zip(people[::2], people[1::2], strict=True):
        assert (user_group(first.pk), second.pk) in told
        assert (user_group(second.pk), first.pk) in told
