"""Sockets opening or closing together join and leave their groups together
(messaging/realtime/group_batches.py): each is reached through its groups while open and
left out once closed, with fewer Redis round trips than sockets."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from messaging.delivery.layer import ChatRedisChannelLayer
from messaging.domain.events import user_group

pytestmark = pytest.mark.django_db(transaction=True)


def pong(n: int) -> dict:
    return {"type": "chat.frame", "frame": {"type": "pong", "last_seq": n}}


async def test_sockets_opening_together_are_each_reached_through_their_user(connect, make_user):
    users = [await database_sync_to_async(make_user)(username=f"p{i}") for i in range(8)]
    sockets = await asyncio.gather(*(connect(user) for user in users))
    layer = get_channel_layer()
    for n, user in enumerate(users):
        await layer.group_send(user_group(user.pk), pong(n))
    for n, socket in enumerate(sockets):
        assert await socket.recv() == {"type": "pong", "last_seq": n}


@pytest.mark.services
async def test_a_restart_storm_joins_in_fewer_round_trips_than_sockets(connect, make_user):
    layer = get_channel_layer()
    assert isinstance(layer, ChatRedisChannelLayer)
    users = [await database_sync_to_async(make_user)(username=f"s{i}") for i in range(12)]
    rounds, joined = [0], []
    original = layer.group_add_many

    async def counted(joins):
        joins = list(joins)
        rounds[0] += 1
        joined.extend(joins)
        await original(joins)

    layer.group_add_many = counted
    try:
        sockets = await asyncio.gather(*(connect(user) for user in users))
    finally:
        del layer.group_add_many
    # Every socket in its user's group and its token's, in fewer pipelines than sockets.
    assert len(joined) == 2 * len(users) and rounds[0] < len(users), rounds
    for n, (user, socket) in enumerate(zip(users, sockets, strict=True)):
        group = user_group(user.pk)
        redis = layer.connection(layer.consistent_hash(group))
        assert len(await redis.zrange(layer._group_key(group), 0, -1)) == 1
        await layer.group_send(group, pong(n))
        assert await socket.recv() == {"type": "pong", "last_seq": n}
