from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from messaging.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    # Any other socket path is refused (403) rather than crashing the router.
    re_path(r"", WebsocketDenier.as_asgi()),
]
