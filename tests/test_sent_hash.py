"""sent_hash: keyed, gone with the message's text, and what a retry is answered then."""

import hashlib
import importlib
from datetime import timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone

from messaging.domain import message_changes, moderation, services
from messaging.models import Message
from messaging.protocol import ChatError
from messaging.sending.batch import SendRequest, messages_send_many
from tests.helpers import send_frame

pytestmark = pytest.mark.django_db(transaction=True)


def plain_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def send(sender, body: str, client_id: str, to: str = "bob") -> Message:
    return services.message_send(sender=sender, body=body, client_id=client_id, to=to).message


def send_in_batch(sender, body: str, client_id: str, to: str = "bob"):
    outcomes, _ = messages_send_many([SendRequest(sender, body, client_id, to=to)])
    return outcomes[0]


def stored_hash(message: Message) -> str:
    return Message.objects.values_list("sent_hash", flat=True).get(pk=message.pk)


def test_a_dump_without_the_secret_does_not_tell_the_text(alice, bob, settings):
    message = send(alice, "yes", "c-1")
    batched = send_in_batch(alice, "no", "c-2").result.message
    assert stored_hash(message) not in ("", plain_sha256("yes"))
    assert stored_hash(batched) not in ("", plain_sha256("no"))
    settings.SECRET_KEY = "another secret entirely, 0123456789abcdefghijklmnopqrstuvwxyz"
    assert Message.hash_body("yes") != stored_hash(message), "the hash depends on the secret"


def test_deleting_hiding_and_purging_forget_the_hash(alice, bob, make_user, settings):
    settings.CHAT_DELETED_RETENTION_DAYS = 30  # staff keep hidden messages to restore them
    staff = make_user(username="moderator", is_staff=True, is_superuser=True)
    deleted, hidden, purged = (send(alice, f"text {n}", f"c-{n}") for n in range(3))
    message_changes.message_delete(actor=alice, message_id=deleted.pk)
    moderation.staff_hide_message(staff=staff, message_id=hidden.pk)
    Message.objects.filter(pk=purged.pk).update(created_at=timezone.now() - timedelta(days=60))
    call_command("purge_messages", "--older-than", "30", stdout=StringIO())
    assert [stored_hash(m) for m in (deleted, hidden, purged)] == ["", "", ""]

    # Restored, the hidden message holds the text first sent again, and retries count it.
    moderation.staff_restore_message(staff=staff, message_id=hidden.pk)
    with pytest.raises(ChatError) as refused:
        send(alice, "something else", "c-1")
    assert refused.value.code == "conflict"


@pytest.mark.parametrize("path", ["single", "batch"])
def test_a_retry_with_another_body_is_a_conflict_until_the_message_is_deleted(alice, bob, path):
    first = send(alice, "meet at noon", "c-1")

    if path == "single":
        with pytest.raises(ChatError) as refused:
            send(alice, "meet at one", "c-1")
        assert refused.value.code == "conflict"
    else:
        assert send_in_batch(alice, "meet at one", "c-1").error.code == "conflict"

    message_changes.message_delete(actor=alice, message_id=first.pk)
    for body in ("meet at noon", "meet at one"):
        if path == "single":
            result = services.message_send(sender=alice, body=body, client_id="c-1", to="bob")
        else:
            outcome = send_in_batch(alice, body, "c-1")
            assert outcome.error is None, outcome.error
            result = outcome.result
        assert not result.created and result.message.pk == first.pk
        assert result.message.deleted_at is not None and result.message.body == ""
    assert Message.objects.count() == 1


async def test_a_retry_of_a_deleted_message_is_acked_over_the_socket(connect, alice, bob):
    socket = await connect(alice)
    first = await socket.request(send_frame("oops", "c-1", to="bob"), "message.ack")
    message_id = first["message"]["id"]
    error = await socket.request(send_frame("oops!", "c-1", to="bob"), "error")
    assert error["code"] == "conflict"

    await socket.send({"type": "message.delete", "id": message_id})
    await socket.recv_type("message.updated")
    retry = await socket.request(send_frame("oops!", "c-1", to="bob"), "message.ack")
    assert retry["message"]["id"] == message_id
    assert retry["message"]["deleted"] is True and retry["message"]["body"] == ""


def test_the_upgrade_keys_untouched_rows_and_empties_the_others(alice, bob):
    untouched, edited, deleted = (send(alice, f"text {n}", f"c-{n}") for n in range(3))
    message_changes.message_edit(editor=alice, message_id=edited.pk, body="changed")
    message_changes.message_delete(actor=alice, message_id=deleted.pk)
    # As the previous release left them: plain hashes, kept after an edit and a delete.
    for message in (untouched, edited, deleted):
        Message.objects.filter(pk=message.pk).update(sent_hash=plain_sha256(message.body))

    migration = importlib.import_module("messaging.migrations.0009_keyed_sent_hash")
    migration.key_the_hashes(apps, None)

    assert stored_hash(untouched) == Message.hash_body("text 0")
    assert stored_hash(edited) == "" and stored_hash(deleted) == ""
    with pytest.raises(ChatError) as refused:
        send(alice, "another text", "c-0")
    assert refused.value.code == "conflict"
