"""The background jobs (Django's tasks API): each a function of plain JSON arguments.

Workers run them (messaging/jobs/runner.py); a job that raises is tried again later, with
backoff, up to CHAT_JOB_ATTEMPTS times.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django_tasks import task

from messaging.jobs import emails, pushes
from messaging.jobs.push_client import push_client
from messaging.jobs.queue import RetryLater


@task(queue_name="push", priority=10)
async def push_send(origin: str, items: list[dict[str, Any]]) -> int:
    """Post pushes to one push service, all at once; retry later those it did not take."""
    prepared = await sync_to_async(pushes.prepare, thread_sensitive=False)(items)
    outcomes = await push_client().send_all(prepared)
    again = await sync_to_async(pushes.record, thread_sensitive=False)(prepared, outcomes)
    if again:
        raise RetryLater(
            f"{len(again)} of {len(prepared)} pushes to {origin} not taken",
            kwargs={"origin": origin, "items": again},
        )
    return len(prepared)


@task(queue_name="email")
def email_missed_messages(membership_id: int, after: int, up_to: int, due_at: str) -> bool:
    """Email a person what they left unread in one conversation."""
    return emails.send_missed(membership_id=membership_id, after=after, up_to=up_to, due_at=due_at)


@task(queue_name="email", priority=5)
def email_verification(user_id: int, address: str) -> bool:
    """Email the link that verifies a person's address."""
    return emails.send_verification(user_id=user_id, address=address)
