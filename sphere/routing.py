"""WebSocket routes: the gateway at ``/ws/v1/`` behind the handshake checks."""

from typing import Any

from django.urls import path

from chat.gateway.consumer import GatewayConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/v1/", GatewayConsumer.as_asgi()),
]
