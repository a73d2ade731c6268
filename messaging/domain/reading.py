"""Read pointers and typing: what members tell each other as they read and write.

Both come in batches: a socket's `read` and `typing` frames that arrive at the same time as
others' are answered together (messaging/realtime/reading_batches.py), in a few statements
for all of them; a single one is a batch of one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from messaging.domain import streams, visibility
from messaging.domain.events import frame_event, publish_on_commit, user_group
from messaging.models import Membership, Message
from messaging.protocol import ChatError, ErrorCode, user_data
from messaging.sql_values import table


@dataclass(frozen=True)
class ReadMark:
    """A reader's pointer to move forward to a message of a conversation."""

    user: Any
    conversation_id: int
    up_to: int


@dataclass(frozen=True)
class TypingSignal:
    """A member typing in a conversation."""

    user: Any
    conversation_id: int


def _not_found(what: str) -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, f"no such {what}")


def conversation_mark_read(*, user, conversation_id: int, up_to: int) -> bool:
    """Move the user's read pointer forward to a message and tell the members.

    An older or equal pointer changes nothing, tells no one, and returns False.
    """
    (answer,) = marks_read([ReadMark(user, conversation_id, up_to)])
    if isinstance(answer, ChatError):
        raise answer
    return answer


def marks_read(marks: Sequence[ReadMark]) -> list[bool | ChatError]:
    """Move each reader's pointer forward and tell the members; answer each mark.

    A mark answers True when it moved the pointer, False when the pointer was already there
    or further on, or the error of a conversation the reader is not in or a message not in
    it. Marks of one pointer in one round are taken together: the further message moves it
    and answers True, the others False.
    """
    if not marks:
        return []
    # The moves and their frames commit together: a failure after the UPDATE undoes the
    # moves, so that the clients' retries move them again and everyone is told.
    with transaction.atomic():
        moved = _move_pointers(marks)
        answers = _answers(marks, moved)
        readers = {mark.user.pk: mark.user for mark in marks}
        members = streams.members_of({conversation_id for _, conversation_id in moved})
        # The reader's own sockets always; the others as the privacy rule lets them.
        seen = visibility.watchers(
            user_ids={user_id for user_id, _ in moved},
            setting=visibility.RECEIPTS,
            among=set().union(*members.values()),
        )
        for (user_id, conversation_id), up_to in sorted(moved.items()):
            frame = {
                "type": "read",
                "conversation": conversation_id,
                "user": user_data(readers[user_id]),
                "up_to": up_to,
            }
            told = {user_id} | (seen[user_id] & members[conversation_id])
            publish_on_commit(frame_event(user_group(member), frame) for member in sorted(told))
    return answers


def _move_pointers(marks: Sequence[ReadMark]) -> dict[tuple[int, int], int]:
    """Move the pointers that are behind; return (user, conversation) -> where each moved."""
    # One statement on the common path (a reader's pointer moving on): the checks that tell
    # a missing conversation from a missing message run only for the marks that moved none.
    # Two marks of one reader in one conversation move it to the further one.
    asked, params = table(
        "a",
        {"u": "bigint", "c": "bigint", "m": "bigint"},
        [(mark.user.pk, mark.conversation_id, mark.up_to) for mark in marks],
    )
    memberships = Membership._meta.db_table
    if (
        connection.vendor == "postgresql"
        and len({(mark.user.pk, mark.conversation_id) for mark in marks}) > 1
    ):
        # The rows locked in id order first: in whatever order the UPDATE's plan takes them,
        # two rounds (of two processes, or a round and a send batch showing memberships)
        # could each hold a row the other waits for.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT mb.id FROM {memberships} mb JOIN {asked}"
                " ON mb.user_id = a.u AND mb.conversation_id = a.c"
                " ORDER BY mb.id FOR UPDATE OF mb",
                params,
            )
    sql = f"""
        UPDATE {memberships} SET last_read_message_id = w.m
        FROM (
            SELECT a.u, a.c, MAX(a.m) AS m FROM {asked}
            JOIN {Message._meta.db_table} msg ON msg.id = a.m AND msg.conversation_id = a.c
            GROUP BY a.u, a.c
        ) AS w
        WHERE {memberships}.user_id = w.u AND {memberships}.conversation_id = w.c
            AND {memberships}.last_read_message_id < w.m
        RETURNING {memberships}.user_id, {memberships}.conversation_id,
            {memberships}.last_read_message_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(user_id, conversation_id): up_to for user_id, conversation_id, up_to in cursor}


def _answers(
    marks: Sequence[ReadMark], moved: dict[tuple[int, int], int]
) -> list[bool | ChatError]:
    """Answer each mark: moved, not moved, or why it could not be."""
    pairs = [(mark.user.pk, mark.conversation_id) for mark in marks]
    # A pointer that moved answers its mark, unless other marks asked the same pointer:
    # then each one's own message is checked.
    times_asked = Counter(pairs)
    answers: list[bool | ChatError | None] = [
        True if pair in moved and times_asked[pair] == 1 else None for pair in pairs
    ]
    unsure = [index for index, answer in enumerate(answers) if answer is None]
    if not unsure:
        return answers  # type: ignore[return-value]
    asked, params = table(
        "a",
        {"i": "bigint", "u": "bigint", "c": "bigint", "m": "bigint"},
        [(index, *pairs[index], marks[index].up_to) for index in unsure],
    )
    sql = f"""
        SELECT a.i,
            EXISTS (SELECT 1 FROM {Membership._meta.db_table} mb
                WHERE mb.user_id = a.u AND mb.conversation_id = a.c),
            EXISTS (SELECT 1 FROM {Message._meta.db_table} msg
                WHERE msg.id = a.m AND msg.conversation_id = a.c)
        FROM {asked}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for index, member, in_conversation in cursor:
            if not member:
                answers[index] = _not_found("conversation")
            elif not in_conversation:
                answers[index] = _not_found("message")
            else:
                answers[index] = moved.get(pairs[index]) == marks[index].up_to
    return answers  # type: ignore[return-value]


def conversation_typing(*, user, conversation_id: int) -> None:
    """Tell the other members the user is typing; nothing is stored."""
    (answer,) = typings([TypingSignal(user, conversation_id)])
    if answer is not None:
        raise answer


def typings(signals: Sequence[TypingSignal]) -> list[ChatError | None]:
    """Tell the other members each member is typing; answer each signal (None: told)."""
    members = streams.members_of({signal.conversation_id for signal in signals})
    answers: list[ChatError | None] = []
    typing: dict[tuple[int, int], Any] = {}
    for signal in signals:
        if signal.user.pk in members.get(signal.conversation_id, ()):
            typing[(signal.user.pk, signal.conversation_id)] = signal.user
            answers.append(None)
        else:
            answers.append(_not_found("conversation"))
    if not typing:
        return answers
    seen = visibility.watchers(
        user_ids={user_id for user_id, _ in typing},
        setting=visibility.TYPING,
        among=set().union(*(members[conversation_id] for _, conversation_id in typing)),
    )
    for (user_id, conversation_id), user in sorted(typing.items()):
        frame = {"type": "typing", "conversation": conversation_id, "user": user_data(user)}
        told = seen[user_id] & members[conversation_id]
        publish_on_commit(frame_event(user_group(member), frame) for member in sorted(told))
    return answers
