"""The processes that run background jobs, and the clocks of their periodic duties."""

from __future__ import annotations

from django.db import models


class JobWorker(models.Model):
    """A process running background jobs; its heartbeat says it is alive.

    The jobs a worker was running when its heartbeat stopped run again elsewhere.
    """

    id = models.CharField(max_length=64, primary_key=True)
    heartbeat_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # Run inside a daphne process (the embedded defaults) rather than by chat_worker.
    embedded = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"worker {self.id}"


class JobClock(models.Model):
    """A periodic duty of the workers: when it runs next, and what it remembers."""

    name = models.CharField(max_length=40, primary_key=True)
    next_run_at = models.DateTimeField()
    state = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.name} at {self.next_run_at:%H:%M:%S}"
