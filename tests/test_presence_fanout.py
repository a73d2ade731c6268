"""Someone coming online or going offline is announced to those of their watchers who are
online once the change commits, and to no one else: a person in thousands of conversations
has thousands of watchers, and a frame for each of the offline ones would reach no one."""

from __future__ import annotations

import logging

import pytest

from messaging.delivery import fanout
from messaging.domain import blocks, presence, services, user_settings, visibility
from messaging.domain.events import user_group

pytestmark = pytest.mark.django_db(transaction=True)


def _presence_frames(events) -> dict[str, tuple[str, bool]]:
    """Map each group told of a presence change to (whose, online)."""
    return {
        group: (payload["frame"]["user"]["username"], payload["frame"]["online"])
        for group, payload in events
        if payload["frame"]["type"] == "presence"
    }


@pytest.fixture
def watched(alice, make_user):
    """Alice, who wrote to 30 people; return the three of them who will be online."""
    people = [make_user(username=f"peer{n:02d}") for n in range(30)]
    for n, person in enumerate(people):
        services.message_send(sender=alice, body="hello", client_id=str(n), to=person.username)
    return people[:3]


def test_coming_online_is_told_only_to_watchers_online_after_the_commit(alice, watched):
    for n, person in enumerate(watched):
        presence.socket_opened(user=person, channel_name=f"peer-{n}", process="p")

    _, events, routes = fanout.call_collecting(
        presence.sockets_opened, openings=[(alice, "alice-1")], process="p"
    )

    told = _presence_frames(events)
    assert told == {user_group(person.pk): ("alice", True) for person in watched}
    assert set(routes) == {person.pk for person in watched}


def test_going_offline_is_told_only_to_watchers_still_online(alice, watched):
    for n, person in enumerate(watched):
        presence.socket_opened(user=person, channel_name=f"peer-{n}", process="p")
    presence.socket_opened(user=alice, channel_name="alice-1", process="p")
    presence.socket_closed(user=watched[0], channel_name="peer-0")

    _, events, _ = fanout.call_collecting(presence.sockets_closed, closings=[(alice, "alice-1")])

    told = _presence_frames(events)
    assert told == {user_group(person.pk): ("alice", False) for person in watched[1:]}


def test_no_one_blocked_is_told_and_no_one_when_presence_is_hidden(alice, watched):
    for n, person in enumerate(watched):
        presence.socket_opened(user=person, channel_name=f"peer-{n}", process="p")
    blocks.block_create(blocker=watched[0], username="alice")

    _, events, _ = fanout.call_collecting(
        presence.sockets_opened, openings=[(alice, "alice-1")], process="p"
    )
    assert set(_presence_frames(events)) == {user_group(person.pk) for person in watched[1:]}

    presence.socket_closed(user=alice, channel_name="alice-1")
    user_settings.settings_update(user=alice, changes={"show_presence": False})
    _, events, _ = fanout.call_collecting(
        presence.sockets_opened, openings=[(alice, "alice-2")], process="p"
    )
    assert _presence_frames(events) == {}


def test_a_failed_announcement_leaves_the_socket_open_and_is_logged(
    alice, watched, monkeypatch, caplog
):
    presence.socket_opened(user=watched[0], channel_name="peer-0", process="p")

    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(visibility, "watchers", broken)
    with caplog.at_level(logging.ERROR, logger="messaging.domain.events"):
        _, events, _ = fanout.call_collecting(
            presence.sockets_opened, openings=[(alice, "alice-1")], process="p"
        )

    assert events == []
    assert presence.open_socket_count(user=alice) == 1, "the socket is recorded"
    assert "could not be found" in caplog.text
