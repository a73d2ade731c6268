"""The consumer of the Channels tutorial, made a DM relay: no guarantees, stock Channels.

Each user's sockets join the group "user_<id>". A frame {"to": 18, "client_id", "body"} is
stored with one INSERT (unless TUTORIAL_STORE=0), then sent with one group_send to the
recipient and one to the sender's own group (the copy that multi-tab sync needs), so the
fan-out is the product's. Nothing is acked, retried, deduplicated or recoverable.
"""

import json

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from tchat.models import Message


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.user_id = self.scope["url_route"]["kwargs"]["user_id"]
        self.group_name = f"user_{self.user_id}"
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "ready", "user": self.user_id}))

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        data = json.loads(text_data)
        to = str(data["to"])
        if settings.TUTORIAL_STORE:
            await self.save_message(to, data["body"], data["client_id"])
        event = {
            "type": "chat.message",
            "from": self.user_id,
            "to": to,
            "client_id": data["client_id"],
            "body": data["body"],
        }
        await self.channel_layer.group_send(f"user_{to}", event)
        await self.channel_layer.group_send(self.group_name, event)

    @database_sync_to_async
    def save_message(self, to, body, client_id):
        Message.objects.create(sender=self.user_id, recipient=to, body=body, client_id=client_id)

    async def chat_message(self, event):
        await self.send(
            text_data=json.dumps(
                {
                    "type": "message.new",
                    "from": event["from"],
                    "to": event["to"],
                    "client_id": event["client_id"],
                    "body": event["body"],
                }
            )
        )
