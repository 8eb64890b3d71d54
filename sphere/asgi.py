"""The ASGI entry point: HTTP through Django, WebSockets through Channels' router."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sphere.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.gateway.handshake import gateway_stack  # noqa: E402
from fanout.transport import start_with_server  # noqa: E402
from sphere.logs import redact_access_log  # noqa: E402
from sphere.routing import websocket_urlpatterns  # noqa: E402

redact_access_log()  # daphne's access log names invite codes (docs/operations.md, "Logs")

application = start_with_server(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": gateway_stack(URLRouter(websocket_urlpatterns)),
        }
    )
)
