"""A user's last stamp (`ready`, `pong`): exact after every kind of change, read short."""

import importlib

import pytest
from django.db import connection
from django.db.models import Max

from messaging.domain import groups, message_changes, reactions, services
from messaging.domain.selectors import last_seqs_of
from messaging.management.commands.after_restore import streams_raise
from messaging.models import ChangeStream, Message
from messaging.sending.batch import SendRequest, messages_send_many

pytestmark = pytest.mark.django_db


def newest_stamp(user) -> int:
    """The contract's S, counted the slow way: the largest seq in the user's conversations."""
    found = Message.objects.filter(conversation__memberships__user=user).aggregate(Max("seq"))
    return found["seq__max"] or 0


def assert_exact(*users) -> None:
    reported = last_seqs_of(user_ids=[user.pk for user in users])
    assert reported == {user.pk: newest_stamp(user) for user in users}


def named_by_stream(user) -> int | None:
    """The conversation the user's stream names as holding their last stamp (if any)."""
    stream = ChangeStream.objects.filter(user=user).first()
    return stream and stream.last_conversation_id


@pytest.mark.django_db(transaction=True)
def test_each_change_names_its_conversation_in_the_streams_it_reaches(make_user):
    alice, bob, carol = (make_user(username=name) for name in ("alice", "bob", "carol"))
    alone = services.message_send(sender=alice, body="hi", client_id="a-1", to="bob").message
    assert named_by_stream(alice) == named_by_stream(bob) == alone.conversation_id
    assert named_by_stream(carol) is None
    assert_exact(alice, bob, carol)

    # Sends stored together name the conversation of each member's last one.
    group = services.conversation_create_group(creator=carol, others=[alice, bob])
    messages_send_many(
        [
            SendRequest(bob, "to the group", "b-1", conversation_id=group.pk),
            SendRequest(alice, "to bob", "a-2", to="bob"),
        ]
    )
    assert named_by_stream(carol) == group.pk
    assert named_by_stream(alice) == named_by_stream(bob) == alone.conversation_id
    assert_exact(alice, bob, carol)

    # Edits, reactions and deletes draw stamps for their message's conversation.
    message_changes.message_edit(editor=alice, message_id=alone.pk, body="hi!")
    assert named_by_stream(carol) == group.pk
    assert_exact(alice, bob, carol)
    said = Message.objects.get(client_id="b-1")
    reactions.reaction_add(user=alice, message_id=said.pk, emoji="👍")
    assert named_by_stream(alice) == named_by_stream(carol) == group.pk
    assert_exact(alice, bob, carol)
    message_changes.message_delete(actor=alice, message_id=alone.pk)
    assert named_by_stream(alice) == alone.conversation_id
    assert_exact(alice, bob, carol)


def test_leaving_the_conversation_of_the_last_change_reports_the_rest(make_user):
    alice, bob, carol, dave = (
        make_user(username=name) for name in ("alice", "bob", "carol", "dave")
    )
    direct = services.message_send(sender=alice, body="hi", client_id="a-1", to="bob").message
    group = services.conversation_create_group(creator=carol, others=[bob, dave])
    services.message_send(sender=carol, body="news", client_id="c-1", conversation_id=group.pk)
    groups.group_remove(actor=bob, conversation_id=group.pk, username="bob")

    stream = ChangeStream.objects.get(user=bob)
    assert stream.last_conversation_id == group.pk
    # What he can sync now ends at the direct message, below his stream's last stamp.
    assert last_seqs_of(user_ids=[bob.pk])[bob.pk] == direct.seq < stream.last_seq
    assert_exact(alice, bob, carol)


def test_a_stamp_no_change_holds_any_more_is_not_reported(make_user):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    services.message_send(sender=alice, body="one", client_id="a-1", to="bob")
    last = services.message_send(sender=alice, body="two", client_id="a-2", to="bob").message
    # Removed outright (as a staff member's bulk delete in the admin does).
    Message.objects.filter(pk=last.pk).delete()
    assert_exact(alice, bob)
    assert last_seqs_of(user_ids=[alice.pk])[alice.pk] < last.seq


def test_after_a_restore_the_raised_streams_report_what_is_there_until_the_next_change(
    make_user,
):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    services.message_send(sender=alice, body="before", client_id="a-1", to="bob")
    floor, _ = streams_raise(1000)
    assert named_by_stream(alice) is None
    assert_exact(alice, bob)
    after = services.message_send(sender=bob, body="after", client_id="b-1", to="alice").message
    assert after.seq == floor + 1
    assert named_by_stream(alice) == after.conversation_id
    assert_exact(alice, bob)


def test_the_upgrade_names_the_conversation_of_each_streams_last_stamp(make_user):
    alice, bob, carol = (make_user(username=name) for name in ("alice", "bob", "carol"))
    direct = services.message_send(sender=alice, body="hi", client_id="a-1", to="bob").message
    group = services.conversation_create_group(creator=carol, others=[alice, make_user()])
    # As a database migrated from before streams named their conversation.
    ChangeStream.objects.update(last_conversation_id=None)
    upgrade = importlib.import_module("messaging.migrations.0018_changestream_last_conversation")
    with connection.cursor() as cursor:
        cursor.execute(upgrade.LAST_CONVERSATION_FILL)
    assert named_by_stream(alice) == named_by_stream(carol) == group.pk
    assert named_by_stream(bob) == direct.conversation_id
    assert_exact(alice, bob, carol)
