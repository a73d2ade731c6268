"""The handlers of the client's frames: send, sync, read, typing, edit, delete, react, ping."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from messaging import metrics
from messaging.domain import message_changes, reactions, selectors
from messaging.domain.reading import ReadMark, TypingSignal
from messaging.protocol import (
    ChatError,
    DeleteFrame,
    EditFrame,
    ErrorCode,
    PingFrame,
    ReactionFrame,
    ReadFrame,
    SendFrame,
    SyncFrame,
    TypingFrame,
    encode,
    message_data,
)
from messaging.realtime.batched_calls import BatchedCalls
from messaging.realtime.reading_batches import read_marks, typing_signals
from messaging.sending.queue import SendRequest, send_queue
from messaging.singletons import per_event_loop, per_process

log = logging.getLogger(__name__)


def _make_read_threads() -> ThreadPoolExecutor | None:
    count = settings.CHAT_SOCKET_READ_THREADS
    if count < 1:
        return None
    return ThreadPoolExecutor(max_workers=count, thread_name_prefix="chat-socket-reads")


# The sockets' reads (sync, ping) run on a few threads of their own, each with its own
# database connection, beside the one thread all of the process's other socket work
# shares (database_sync_to_async: handshakes, read pointers, edits, presence). On that one
# thread 20 heavy users' syncs waited for each other, and every handshake behind them.
socket_read_threads = per_process(_make_read_threads)


def _read_call(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    # As database_sync_to_async: no connection kept past its age, before or after.
    close_old_connections()
    try:
        return function(**kwargs)
    finally:
        close_old_connections()


async def read_on_socket_threads(function: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a selector that writes nothing on the socket reads' threads; return its result."""
    threads = socket_read_threads()
    try:
        if threads is None:
            return await database_sync_to_async(function)(**kwargs)
        return await sync_to_async(_read_call, thread_sensitive=False, executor=threads)(
            function, kwargs
        )
    except (OperationalError, InterfaceError) as exc:
        metrics.DATABASE_ERRORS.inc()
        log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
        raise ChatError(ErrorCode.UNAVAILABLE, "the database did not answer") from None


async def _last_seqs_together(user_ids: list[int]) -> list[int]:
    latest = await read_on_socket_threads(selectors.last_seqs_of, user_ids=user_ids)
    return [latest[user_id] for user_id in user_ids]


# Every idle tab pings every 15 s (static/messaging/net/socket.js), so a process with
# thousands of sockets answers hundreds of pings a second: those waiting at the same time
# read their users' last stamps in one statement, on one trip to a read thread.
LAST_SEQS_AT_ONCE = 500
last_seq_reads = per_event_loop(lambda: BatchedCalls(_last_seqs_together, LAST_SEQS_AT_ONCE))
last_seq_reads.__doc__ = "Return this event loop's queue of users whose last stamp a pong needs."
# After a channel layer outage every socket of the process asks at once: their rounds have
# a queue of their own, so that the pings meanwhile do not wait behind thousands of them.
after_outage_last_seq_reads = per_event_loop(
    lambda: BatchedCalls(_last_seqs_together, LAST_SEQS_AT_ONCE)
)
after_outage_last_seq_reads.__doc__ = (
    "Return this event loop's queue of stamps asked after an outage."
)


def sync_page(messages: list, *, more: bool, max_chars: int) -> tuple[list[dict[str, Any]], bool]:
    """Turn messages into a sync page of at most about max_chars of frame text.

    The first message always goes, whatever its size, so that paging always moves on.
    """
    page: list[dict[str, Any]] = []
    size = 0
    for message in messages:
        data = message_data(message)
        size += len(encode(data))
        if page and size > max_chars:
            return page, True
        page.append(data)
    return page, more


class FrameHandlers:
    """Hand each kind of client frame to the domain or the send queue, and answer."""

    async def on_send(self, frame: SendFrame) -> None:
        request = SendRequest(
            sender=self.user,
            body=frame.body,
            client_id=frame.client_id,
            to=frame.to,
            conversation_id=frame.conversation,
            reply_to=frame.reply_to,
            attachments=tuple(frame.attachments),
        )
        try:
            # The queue sends the ack itself, once the batch holding this send committed.
            await send_queue().submit(request, self)
        except ChatError as error:
            error.client_id = frame.client_id
            if error.code == ErrorCode.RATE_LIMITED:
                metrics.RATE_LIMITED.labels("send").inc()
            raise

    async def _read(self, function: Callable[..., Any], **kwargs: Any) -> Any:
        """Run a selector that writes nothing on the socket reads' threads; return its result."""
        return await read_on_socket_threads(function, **kwargs)

    async def on_sync(self, frame: SyncFrame) -> None:
        await self._check_rate("sync", settings.CHAT_SYNC_RATE)
        messages, more = await self._read(
            selectors.messages_after,
            user=self.user,
            after=frame.after,
            limit=settings.CHAT_SYNC_PAGE,
        )
        page, more = sync_page(messages, more=more, max_chars=settings.CHAT_SYNC_MAX_CHARS)
        metrics.SYNCS.inc()
        metrics.SYNC_MESSAGES.inc(len(page))
        await self.send_frame({"type": "sync.result", "messages": page, "more": more})

    async def on_read(self, frame: ReadFrame) -> None:
        await self._check_rate("read", settings.CHAT_READ_RATE)
        # With the other sockets' reads waiting at the same time, in one round.
        await read_marks().call(ReadMark(self.user, frame.conversation, frame.up_to))

    async def on_typing(self, frame: TypingFrame) -> None:
        await self._check_rate("typing", settings.CHAT_TYPING_RATE)
        # A refusal comes back raised (BatchedCalls), as a read's does.
        await typing_signals().call(TypingSignal(self.user, frame.conversation))

    async def on_edit(self, frame: EditFrame) -> None:
        await self._check_rate("edit", settings.CHAT_EDIT_RATE)
        _, events = await self._db(
            message_changes.message_edit, editor=self.user, message_id=frame.id, body=frame.body
        )
        await self.publish(events)

    async def on_delete(self, frame: DeleteFrame) -> None:
        await self._check_rate("edit", settings.CHAT_EDIT_RATE)
        _, events = await self._db(
            message_changes.message_delete, actor=self.user, message_id=frame.id
        )
        await self.publish(events)

    async def on_reaction(self, frame: ReactionFrame) -> None:
        await self._check_rate("reaction", settings.CHAT_REACTION_RATE)
        change = (
            reactions.reaction_add if frame.type == "reaction.add" else reactions.reaction_remove
        )
        _, events = await self._db(change, user=self.user, message_id=frame.id, emoji=frame.emoji)
        await self.publish(events)

    async def on_ping(self, frame: PingFrame) -> None:
        await self._check_rate("ping", settings.CHAT_PING_RATE)
        last_seq = await last_seq_reads().call(self.user.pk)
        await self.send_frame({"type": "pong", "last_seq": last_seq})

    HANDLERS = {
        SendFrame: on_send,
        SyncFrame: on_sync,
        ReadFrame: on_read,
        TypingFrame: on_typing,
        EditFrame: on_edit,
        DeleteFrame: on_delete,
        PingFrame: on_ping,
        ReactionFrame: on_reaction,
    }
