from django.urls import path, re_path

from messaging.realtime.consumer import ChatConsumer


async def refuse_socket(scope, receive, send) -> None:
    """Refuse a socket on an unknown path (HTTP 403), touching no channel layer."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close"})


websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    re_path(r"", refuse_socket),
]
