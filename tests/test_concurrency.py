"""Races on PostgreSQL: duplicates by client_id, and the sync cursor under concurrent writers."""

import random
import threading

import pytest
from django.db import connection

from messaging.domain import message_changes, selectors, services
from messaging.domain.events import collecting, user_group
from messaging.models import ChangeStream, Message

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def run_threads(targets) -> None:
    errors = []

    def guarded(target):
        def run():
            try:
                target()
            except Exception as exc:  # surfaced below, with the thread's failure
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=guarded(target)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def test_the_same_client_id_sent_concurrently_stores_one_message(alice, bob):
    barrier = threading.Barrier(8)
    results = []

    def send():
        barrier.wait()
        results.append(
            services.message_send(sender=alice, body="once", client_id="same", to="bob")
        )

    run_threads([send] * 8)
    assert Message.objects.count() == 1
    assert sum(result.created for result in results) == 1
    assert len({result.message.pk for result in results}) == 1


def test_a_reader_that_syncs_while_many_write_misses_nothing(make_user):
    reader = make_user(username="reader")
    writers = [make_user(username=f"writer{n}") for n in range(6)]
    done = threading.Event()
    seen: dict[int, int] = {}

    def write(writer):
        def run():
            mine = []
            rng = random.Random(writer.pk)
            for n in range(25):
                message = services.message_send(
                    sender=writer, body=f"{writer.username} {n}", client_id=f"w{n}", to="reader"
                ).message
                mine.append(message.pk)
                if rng.random() < 0.3:
                    message_changes.message_edit(
                        editor=writer, message_id=rng.choice(mine), body=f"edited {n}"
                    )
                if rng.random() < 0.1:
                    target = mine.pop(rng.randrange(len(mine)))
                    message_changes.message_delete(actor=writer, message_id=target)

        return run

    def read():
        cursor = 0
        while True:
            finished = done.is_set()
            page, more = selectors.messages_after(user=reader, after=cursor, limit=50)
            for message in page:
                assert message.seq > cursor, "sync returned a change it had already passed"
                seen[message.pk] = message.seq
                cursor = message.seq
            if finished and not more:
                return

    reader_thread = threading.Thread(target=lambda: (read(), connection.close()))
    reader_thread.start()
    run_threads([write(writer) for writer in writers])
    done.set()
    reader_thread.join(60)

    stored = dict(Message.objects.values_list("pk", "seq"))
    assert len(stored) == 6 * 25
    assert seen == stored, "the reader's view must equal the database's"


def test_each_push_carries_the_recipients_previous_stamp(alice, bob, carol):
    with collecting() as events:
        for n in range(3):
            services.message_send(sender=alice, body=f"a{n}", client_id=f"a{n}", to="carol")
            services.message_send(sender=bob, body=f"b{n}", client_id=f"b{n}", to="carol")
    carol_pushes = [payload["frame"] for group, payload in events if group == user_group(carol.pk)]
    chain = [0] + [frame["message"]["seq"] for frame in carol_pushes]
    assert [frame["prev_seq"] for frame in carol_pushes] == chain[:-1]


@pytest.mark.parametrize("change", ["add", "remove"])
def test_a_send_racing_a_membership_change_reaches_exactly_the_members_after_it(make_user, change):
    """A send that waits on a group change must see the members as the change left them."""
    import time

    from django.db import transaction

    from messaging.domain import groups

    alice, bob, carol, nina = (make_user(username=n) for n in ("alice", "bob", "carol", "nina"))
    group = services.conversation_create_group(creator=alice, others=[bob, carol])
    changed = threading.Event()
    sent = {}

    def change_members():
        with transaction.atomic():
            if change == "add":
                groups.group_add(actor=alice, conversation_id=group.pk, usernames=["nina"])
            else:
                groups.group_remove(actor=alice, conversation_id=group.pk, username="carol")
            changed.set()
            time.sleep(1)  # the send below queues behind this transaction

    def send():
        changed.wait(10)
        with collecting() as events:
            sent["message"] = services.message_send(
                sender=bob, body="hello", client_id="race", conversation_id=group.pk
            ).message
        sent["groups"] = {group_name for group_name, _ in events}

    run_threads([change_members, send])
    expected = {alice, bob, carol, nina} if change == "add" else {alice, bob}
    assert sent["groups"] == {user_group(user.pk) for user in expected}
    if change == "add":
        # Nina's stamps stay in order: the message is her newest change.
        assert ChangeStream.objects.get(user=nina).last_seq == sent["message"].seq


def test_sockets_opening_at_once_in_several_processes_stay_within_the_cap(alice):
    from messaging.domain import presence

    opened, refused = [], []

    def open_one(n: int) -> None:
        try:
            presence.socket_opened(
                user=alice, channel_name=f"chan-{n}", process=f"process-{n % 3}", max_sockets=4
            )
            opened.append(n)
        except presence.TooManySockets:
            refused.append(n)
        finally:
            connection.close()

    run_threads([lambda n=n: open_one(n) for n in range(12)])
    assert len(opened) == 4 and len(refused) == 8
    assert presence.open_socket_count(user=alice) == 4
