"""A process's heartbeat makes its presence rows match its sockets, a bounded piece at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.delivery import fanout
from messaging.domain import presence, services
from messaging.domain.events import user_group
from messaging.models import PresenceProcess, SocketPresence

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


def pairs_who_wrote(make_user, count: int) -> list:
    """Make `count` people in pairs who wrote to each other, so that each sees the other."""
    people = [make_user(username=f"p{n}") for n in range(count)]
    for first, second in zip(people[::2], people[1::2], strict=True):
        services.message_send(sender=first, body="hi", client_id="a", to=second.username)
        services.message_send(sender=second, body="hi", client_id="b", to=first.username)
    return people


@pytest.mark.django_db(transaction=True)
def test_a_swept_process_records_its_sockets_again_in_a_few_batches_and_announces_them(
    make_user, django_assert_max_num_queries
):
    # Its database was away for longer than the presence TTL: another process swept all its
    # rows. Its next beat records every socket again, batched like handshakes, so that the
    # process's database work is not held up for long behind thousands of them.
    people = pairs_who_wrote(make_user, 2 * presence.REOPENED_AT_ONCE + 2)
    sockets = {f"socket-{person.pk}": person.pk for person in people}

    with django_assert_max_num_queries(60):
        _, events, _ = fanout.call_collecting(
            presence.sockets_heartbeat, process="p3", sockets=sockets
        )
    assert SocketPresence.objects.filter(process="p3").count() == len(people)
    # Each of a pair recorded in the same batch hears that the other is online, whichever
    # comes first in it (one at a time, the first recorded never heard of the second).
    told = {(group, event["frame"]["user"]["id"]) for group, event in events}
    for first, second in zip(people[::2], people[1::2], strict=True):
        assert (user_group(first.pk), second.pk) in told
        assert (user_group(second.pk), first.pk) in told


@pytest.mark.django_db(transaction=True)
def test_a_dead_processs_sockets_are_swept_together_and_their_owners_announced_offline(
    make_user, django_assert_max_num_queries
):
    people = pairs_who_wrote(make_user, 400)
    firsts, seconds = people[::2], people[1::2]
    presence.sockets_opened(openings=[(p, f"dead-{p.pk}") for p in firsts], process="dead")
    presence.sockets_opened(openings=[(p, f"live-{p.pk}") for p in seconds], process="live")
    # One of the dead process's people also has a socket on the live process: still online.
    presence.sockets_opened(openings=[(firsts[0], "live-again")], process="live")
    PresenceProcess.objects.filter(id="dead").update(
        heartbeat_at=timezone.now() - timedelta(days=1)
    )

    with django_assert_max_num_queries(30):
        swept, events, _ = fanout.call_collecting(presence.sweep_expired)
    assert swept == len(firsts)
    told = {
        (group, event["frame"]["user"]["id"], event["frame"]["online"]) for group, event in events
    }
    assert told == {
        (user_group(second.pk), first.pk, False)
        for first, second in zip(firsts[1:], seconds[1:], strict=True)
    }
    assert presence.open_socket_count(user=firsts[0]) == 1
