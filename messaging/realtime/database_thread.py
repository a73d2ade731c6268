"""Socket work that writes: on the process's one database thread, its failure a clear error."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

from messaging import metrics
from messaging.delivery import fanout
from messaging.protocol import ChatError, ErrorCode

log = logging.getLogger(__name__)


async def on_database_thread(
    function: Callable[..., Any], /, **kwargs: Any
) -> tuple[Any, fanout.Delivery]:
    """Run a service on the database thread; return its result and what it committed.

    A database that does not answer is the client's `unavailable` error: nothing was stored.
    """
    try:
        result, events, routes = await database_sync_to_async(fanout.call_collecting)(
            function, **kwargs
        )
    except (OperationalError, InterfaceError) as exc:
        metrics.DATABASE_ERRORS.inc()
        log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
        raise ChatError(
            ErrorCode.UNAVAILABLE, "the database did not answer; nothing was stored"
        ) from None
    return result, fanout.Delivery(events, routes)
