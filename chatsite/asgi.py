"""ASGI entry point: HTTP to Django, /ws/chat/ through authentication to the consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chatsite.daphne_patches import patch_daphne  # noqa: E402
from chatsite.gc_tuning import tune_garbage_collector  # noqa: E402
from chatsite.ws_deflate import offer_deflate  # noqa: E402
from messaging.realtime.admission import AdmitHandshakes  # noqa: E402
from messaging.realtime.auth import WebSocketAuthMiddleware  # noqa: E402
from messaging.realtime.backpressure import WaitingFramesLimit  # noqa: E402
from messaging.realtime.routing import websocket_urlpatterns  # noqa: E402

patch_daphne()
if settings.CHAT_WS_DEFLATE:
    offer_deflate()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AdmitHandshakes(
            WebSocketAuthMiddleware(WaitingFramesLimit(URLRouter(websocket_urlpatterns)))
        ),
    }
)
if settings.GC_TUNING:
    tune_garbage_collector()
