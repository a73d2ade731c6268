"""`read` and `typing` frames that arrive together, answered in one round.

In a chat there are as many of these frames as messages, or more: the writer signals typing
before each message, and the reader's open conversation marks it read as it arrives. Each
alone was a trip to the one database thread and a transaction of its own; at 200 messages a
second with a typing frame and a read each, the sends queued behind those trips (a p99 of
0.5 to 1 s where the same sends alone had 6 to 11 ms: docs/performance.md, run log,
2026-12-07). Those waiting at the same time now go in one trip, in a few statements for all
(messaging/domain/reading.py), and their frames are handed out together.
"""

from __future__ import annotations

from messaging.delivery import fanout
from messaging.domain import reading
from messaging.domain.reading import ReadMark, TypingSignal
from messaging.protocol import ChatError
from messaging.realtime.batched_calls import BatchedCalls
from messaging.realtime.database_thread import on_database_thread
from messaging.singletons import per_event_loop

# Frames of one kind answered in one round at most.
FRAMES_AT_ONCE = 200


async def _marks_together(marks: list[ReadMark]) -> list[bool | ChatError]:
    answers, delivery = await on_database_thread(reading.marks_read, marks=marks)
    await fanout.publish(delivery.events, delivery.routes)
    return answers


async def _typings_together(signals: list[TypingSignal]) -> list[ChatError | None]:
    answers, delivery = await on_database_thread(reading.typings, signals=signals)
    await fanout.publish(delivery.events, delivery.routes)
    return answers


read_marks = per_event_loop(lambda: BatchedCalls(_marks_together, FRAMES_AT_ONCE))
read_marks.__doc__ = "Return this event loop's queue of read pointers to move together."
typing_signals = per_event_loop(lambda: BatchedCalls(_typings_together, FRAMES_AT_ONCE))
typing_signals.__doc__ = "Return this event loop's queue of typing signals to hand out together."
