"""The per-frame limits of a socket and its refusals, closing a client that keeps being refused."""

from __future__ import annotations

import logging
import math
import time
from collections import deque

from django.conf import settings

from messaging import metrics
from messaging.domain.ratelimit import rate_limited
from messaging.protocol import ChatError, ErrorCode
from messaging.realtime.rate_checks import check_rate_together

log = logging.getLogger(__name__)

CLOSE_ABUSE = 1008


class Refusals:
    """Check a frame's rate limit; answer refused frames and count them against abuse."""

    async def _check_rate(self, action: str, rules: str, client_id: str | None = None) -> None:
        # A socket told to wait is refused here until then, without asking the counters
        # again: the window cannot reopen earlier, and a flood of refused frames would
        # otherwise cost a Redis round trip each.
        now = time.monotonic()
        refused_until = self.refused_until.get(action, 0.0) if self.refused_until else 0.0
        try:
            if now < refused_until:
                raise rate_limited(action, math.ceil((refused_until - now) * 10) / 10)
            await check_rate_together(action, self.user.pk, rules)
        except ChatError as error:
            if self.refused_until is None:
                self.refused_until = {}
            self.refused_until[action] = max(refused_until, now + (error.retry_after or 0))
            metrics.RATE_LIMITED.labels(action).inc()
            error.client_id = client_id
            raise

    async def refuse(self, error: ChatError) -> None:
        """Answer a refused frame; close 1008 only when a client keeps being refused.

        Every refusal counts (a flood of malformed frames or of frames past their rate
        alike), except `unavailable`, which is the server's failure, not the client's.
        """
        await self.send_frame(error.as_frame())
        if error.code == ErrorCode.UNAVAILABLE:
            return
        now = time.monotonic()
        if self.rejections is None:
            self.rejections = deque()
        self.rejections.append(now)
        while self.rejections and self.rejections[0] < now - 60:
            self.rejections.popleft()
        if len(self.rejections) > settings.CHAT_ABUSE_CLOSE_AFTER and not self.closing:
            metrics.SOCKETS_CLOSED_FOR_ABUSE.labels("refusals").inc()
            log.warning("closing socket of user %s for flooding", self.user.pk)
            self.sockets.abuse_closed(self.user.pk)
            await self.close(code=CLOSE_ABUSE)
