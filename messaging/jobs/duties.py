"""The workers' periodic duties: find messages to push, notifications to close, emails due,
and clean up. Each runs in one worker at a time, in one transaction with its clock's row.

Pushes need no job made with each message (the send path pays nothing for them): the
push scan reads the new messages themselves, so it is as durable as they are. It keeps
the largest message id it has looked at; ids below it that it has not seen yet (a
transaction that drew its id earlier and commits later, on PostgreSQL) are looked for
again on each pass for GAP_SECONDS, then given up (rolled back, or too late to push).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from messaging.domain import away
from messaging.jobs.push_client import origin_of
from messaging.jobs.queue import enqueue_many
from messaging.jobs.tasks import email_missed_messages, push_send
from messaging.models import JobClock, JobWorker, PushShown

# Messages one push pass looks at; the next pass, right after, goes on.
SCAN_LIMIT = 500
# Pushes of one job: a push service takes them all at once (within its limit).
PUSHES_PER_JOB = 200
# How long an id below the largest seen is looked for before it is given up.
GAP_SECONDS = 60.0
# At most this many ids are looked for at once (a jump of the id sequence is not a gap).
MAX_GAPS = 2000
# Notifications of a conversation nobody read for this long are forgotten.
SHOWN_KEPT = timedelta(days=7)
# Workers not heard from for this long are forgotten.
WORKERS_KEPT = timedelta(days=1)
# Finished jobs are deleted this many at a time.
DELETE_CHUNK = 5000


def _enqueue_pushes(items_by_origin: dict[str, list[dict[str, Any]]]) -> int:
    calls = [
        {"origin": origin, "items": items[start : start + PUSHES_PER_JOB]}
        for origin, items in sorted(items_by_origin.items())
        for start in range(0, len(items), PUSHES_PER_JOB)
    ]
    enqueue_many(push_send, calls)
    return len(calls)


def push_scan(state: dict[str, Any]) -> dict[str, Any]:
    """Push the messages written since the last pass; close notifications read since."""
    high = state.get("high")
    if high is None:
        # The first pass ever: only what comes from now on.
        return {"high": away.newest_message_id(), "gaps": {}}
    gaps = {int(pk): float(since) for pk, since in state.get("gaps", {}).items()}
    rows = away.new_messages_after(after=high, also=sorted(gaps), limit=SCAN_LIMIT)
    seen = {pk for pk, _ in rows}
    targets = away.push_targets([message for _, message in rows if message is not None])
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        by_origin.setdefault(origin_of(target.endpoint), []).append(
            {"s": target.subscription_id, "m": target.message_id}
        )
    _enqueue_pushes(by_origin)
    now = time.time()
    new_high = max([high, *seen])
    for pk in _missing(high, new_high, seen):
        gaps.setdefault(pk, now)
    for pk in seen:
        gaps.pop(pk, None)
    gaps = {pk: since for pk, since in gaps.items() if now - since < GAP_SECONDS}
    close_read()
    return {"high": new_high, "gaps": {str(pk): since for pk, since in sorted(gaps.items())}}


def _missing(low: int, high: int, seen: set[int]) -> Iterable[int]:
    """Yield the ids between low and high (both excluded) not seen, the newest MAX_GAPS."""
    return (pk for pk in range(max(low + 1, high - MAX_GAPS), high) if pk not in seen)


def close_read() -> int:
    """Push a close to each notification whose conversation was read since it was shown."""
    read = away.notifications_read()
    if not read:
        return 0
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for entry in read:
        by_origin.setdefault(origin_of(entry.endpoint), []).append(
            {"s": entry.subscription_id, "c": entry.conversation_id, "r": entry.up_to}
        )
    _enqueue_pushes(by_origin)
    PushShown.objects.filter(pk__in=[entry.shown_id for entry in read]).delete()
    return len(read)


def email_scan(state: dict[str, Any]) -> dict[str, Any]:
    """Enqueue an email for each conversation whose unread messages waited long enough."""
    calls = [
        {
            "membership_id": item.membership_id,
            "after": item.after,
            "up_to": item.up_to,
            "due_at": item.due_at.isoformat(),
        }
        for item in away.emails_due()
        if away.emailed_up_to_move(item)
    ]
    enqueue_many(email_missed_messages, calls)
    return {"last_emails": len(calls)}


def clean_up(state: dict[str, Any]) -> dict[str, Any]:
    """Delete finished jobs past CHAT_JOBS_KEEP_DAYS, and what else is kept for a while."""
    now = timezone.now()
    finished = DBTaskResult.objects.filter(
        status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED],
        finished_at__lt=now - timedelta(days=settings.CHAT_JOBS_KEEP_DAYS),
    )
    deleted = 0
    while chunk := list(finished.values_list("pk", flat=True)[:DELETE_CHUNK]):
        deleted += DBTaskResult.objects.filter(pk__in=chunk).delete()[0]
    PushShown.objects.filter(pushed_at__lt=now - SHOWN_KEPT).delete()
    JobWorker.objects.filter(heartbeat_at__lt=now - WORKERS_KEPT).delete()
    return {"last_deleted": deleted}


@dataclass(frozen=True)
class Duty:
    """A periodic duty: its clock's name, its period in seconds, its work."""

    name: str
    period: Callable[[], float]
    work: Callable[[dict[str, Any]], dict[str, Any]]


DUTIES = [
    Duty("push_scan", lambda: settings.CHAT_PUSH_SCAN_SECONDS, push_scan),
    Duty("email_scan", lambda: settings.CHAT_EMAIL_SCAN_SECONDS, email_scan),
    Duty("clean_up", lambda: 3600.0, clean_up),
]


def clocks_made() -> None:
    """Make the duties' clocks that do not exist yet, due now."""
    for duty in DUTIES:
        try:
            with transaction.atomic():
                JobClock.objects.get_or_create(
                    name=duty.name, defaults={"next_run_at": timezone.now(), "state": {}}
                )
        except IntegrityError:
            pass  # Made by another worker just now.


def seconds_to_next(duties: Iterable[Duty] = DUTIES) -> float:
    """Return how long until the next duty is due (0 if one is; one query)."""
    soonest = JobClock.objects.filter(name__in=[duty.name for duty in duties]).aggregate(
        soonest=Min("next_run_at")
    )["soonest"]
    if soonest is None:
        return 0.0
    return max(0.0, (soonest - timezone.now()).total_seconds())


def run_due(duties: Iterable[Duty] = DUTIES) -> list[str]:
    """Run the duties that are due and that no other worker runs now; return their names."""
    duties = list(duties)
    due = dict(
        JobClock.objects.filter(
            name__in=[duty.name for duty in duties], next_run_at__lte=timezone.now()
        ).values_list("name", "next_run_at")
    )
    ran = []
    for duty in duties:
        if duty.name not in due:
            continue
        with transaction.atomic():
            clock = (
                JobClock.objects.select_for_update(skip_locked=True)
                .filter(name=duty.name, next_run_at__lte=timezone.now())
                .first()
            )
            if clock is None:
                continue
            clock.state = duty.work(dict(clock.state))
            clock.next_run_at = timezone.now() + timedelta(seconds=duty.period())
            clock.save(update_fields=["state", "next_run_at"])
        ran.append(duty.name)
    return ran


def run_now(name: str) -> None:
    """Make a duty due at once (tests, and a command that wants it now)."""
    clocks_made()
    JobClock.objects.filter(name=name).update(next_run_at=timezone.now())
