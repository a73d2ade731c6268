"""The socket's return after a channel layer outage: its groups joined again, a sync asked.

The socket does not read the layer itself: this process's one reader hands it what the
layer has for it (messaging/delivery/layer_reader.py), and the registry, once the layer
answers again after an outage, hands it `chat.layer_back`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import MaxConnectionsError, RedisError

from messaging import metrics
from messaging.delivery.layer_reader import POOL_BUSY_RETRY
from messaging.protocol import ChatError
from messaging.realtime.frame_handlers import after_outage_last_seq_reads
from messaging.realtime.group_batches import join_groups

log = logging.getLogger(__name__)

# 1013, Try Again Later: this socket could not join its groups again after the channel layer
# came back (a bug, not an outage); its client reconnects and syncs.
CLOSE_LAYER_LOST = 1013


class LayerReading:
    """Join this socket's groups again after a layer outage and tell its client to sync."""

    async def chat_layer_back(self, event: dict[str, Any]) -> None:
        """Join this socket's groups again after a layer outage; tell its client to sync.

        Safe without closing: joining a group again changes nothing when the group
        survived (a replica promoted with it), and the `last_seq` is read after the joins,
        so a change committed after that read reaches the socket live (or shows in the next
        push's prev_seq), and one committed before is in the client's sync. The pong is
        the frame every client already syncs on when its `last_seq` is above what it saw.
        Logins ended during the outage are closed by the heartbeat's re-check.
        """
        outages = self.sockets.outages
        if not await self._join_groups_again():
            return
        self.outages_seen = outages
        self.sockets.rejoined(self.channel_name)
        try:
            # With every other socket of the process told at the same moment: one read.
            last_seq = await after_outage_last_seq_reads().call(self.user.pk)
        except ChatError:
            return  # the client's next ping or push shows it what it missed
        await self.send_frame({"type": "pong", "last_seq": last_seq})

    async def _join_groups_again(self) -> bool:
        """Join this socket's groups again; tell whether it did."""
        while not (self.closing or self.cleaned_up):
            try:
                await join_groups(self.channel_layer, self.channel_name, self.joined_groups)
            except MaxConnectionsError:
                # Redis is there, only the pool is busy: join again shortly.
                metrics.REDIS_ERRORS.inc()
                await asyncio.sleep(POOL_BUSY_RETRY)
                continue
            except (RedisError, OSError, TimeoutError) as exc:
                metrics.REDIS_ERRORS.inc()
                self.sockets.layer_failed(exc)
                return False  # lost again: the registry hands this over again once back
            except Exception:
                log.exception("socket %s: joining its groups again failed", self.socket_id)
                await self.close(code=CLOSE_LAYER_LOST)
                return False
            return True
        return False
