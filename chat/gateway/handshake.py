"""The socket handshake: Origin validation and credentials, before the gateway accepts.

A handshake whose Origin is not an allowed host is refused (HTTP 403) whatever it carries. A
ticket alone needs no Origin; a session cookie counts only with an allowed Origin (a page on
another site cannot ride the browser's cookie).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.http.request import validate_host


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin1"))
    return None


def origin_allowed(origin: str) -> bool:
    try:
        parsed = urlparse(origin)
        port = parsed.port
    except ValueError:  # "http://[::1", "http://h:99999"
        return False
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        return False
    host = parsed.hostname if port is None else f"{parsed.hostname}:{port}"
    allowed = settings.ALLOWED_HOSTS
    return validate_host(parsed.hostname, allowed) or validate_host(host, allowed)


def ticket_of(scope: dict[str, Any]) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("ticket")
    return values[0] if values else None


class OriginGate:
    """Refuse a foreign Origin; record in the scope whether a valid one came. A handshake with
    a ticket goes to ``ticketed``, past the session cookie: the ticket is its credential, and
    reading the session (a trip to the one thread Channels keeps for it, shared by every
    socket of the process) would queue each connection of a reconnect storm behind the
    others."""

    def __init__(self, app: Any, ticketed: Any = None) -> None:
        self.app = app
        self.ticketed = app if ticketed is None else ticketed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        origin = header(scope, b"origin")
        if origin is not None and not origin_allowed(origin):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 403})
            return None
        scope = {**scope, "sphere_origin_ok": origin is not None}
        app = self.ticketed if ticket_of(scope) is not None else self.app
        return await app(scope, receive, send)


def gateway_stack(app: Any) -> Any:
    return OriginGate(AuthMiddlewareStack(app), ticketed=app)
