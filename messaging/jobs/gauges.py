"""The queue's gauges in /metrics, read from the database in the background."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from messaging.jobs.queue import refresh_gauges


class QueueGaugesRefresher(Collector):
    """At each scrape, start reading the queue's state if the last reading is old.

    /metrics is answered on the event loop, where the database may not be asked: the
    gauges (messaging/metrics.py) show the reading of a few seconds before.
    """

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        refresh_gauges()
        return iter(())


# Not a per_process object: Prometheus's registry is the process's own and refuses a
# collector registered twice, so no reset of the tests may forget that it was.
_registered = False


def register() -> None:
    """Have each scrape refresh the queue's gauges (once per process)."""
    global _registered
    if not _registered:
        REGISTRY.register(QueueGaugesRefresher())
        _registered = True
