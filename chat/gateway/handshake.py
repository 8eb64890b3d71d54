"""The socket handshake: Origin validation and credentials, before the gateway accepts.

A handshake whose Origin is not an allowed host is refused (HTTP 403) whatever it carries. A
ticket alone needs no Origin; a session cookie counts only with a trusted Origin: the server's
own origin (scheme, host and port, as the handshake reached it) or one of
``CSRF_TRUSTED_ORIGINS``, compared as Django's CSRF check compares a form's Origin (a page on
another site, or on another port or scheme of the same host, cannot ride the browser's cookie).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse, urlsplit

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.http.request import validate_host
from django.utils.http import is_same_domain


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


class _Handshake(HttpRequest):
    """The handshake as a request, for Django's own reading of its host (``ALLOWED_HOSTS``)
    and scheme (``SECURE_PROXY_SSL_HEADER`` behind a proxy)."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self.scope_scheme = "https" if scope.get("scheme") in {"wss", "https"} else "http"
        for key, value in scope.get("headers", []):
            name = "HTTP_" + key.decode("latin1").upper().replace("-", "_")
            self.META.setdefault(name, value.decode("latin1"))

    def _get_scheme(self) -> str:
        return self.scope_scheme


def origin_trusted(scope: dict[str, Any], origin: str) -> bool:
    """Whether ``origin`` may bring the session cookie: the server's own origin, scheme and
    port included, or one of ``CSRF_TRUSTED_ORIGINS`` (exact, or ``*.`` subdomains)."""
    request = _Handshake(scope)
    try:
        own = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    except (DisallowedHost, KeyError):  # a host not allowed, or none in the handshake
        own = None
    if origin == own:
        return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in {entry for entry in trusted if "*" not in entry}:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, entry_netloc.lstrip("*"))
        for entry_scheme, entry_netloc in (urlsplit(e)[:2] for e in trusted if "*" in e)
        if entry_scheme == parsed.scheme
    )


def ticket_of(scope: dict[str, Any]) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin1")).get("ticket")
    return values[0] if values else None


class OriginGate:
    """Refuse a foreign Origin; record in the scope whether a trusted one came (the session
    cookie counts only then, ``origin_trusted``). A handshake with a ticket goes to
    ``ticketed``, past the session cookie: the ticket is its credential, and reading the
    session (a trip to the one thread Channels keeps for it, shared by every socket of the
    process) would queue each connection of a reconnect storm behind the others."""

    def __init__(self, app: Any, ticketed: Any = None) -> None:
        self.app = app
        self.ticketed = app if ticketed is None else ticketed

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        origin = header(scope, b"origin")
        if origin is not None and not origin_allowed(origin):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 403})
            return None
        if ticket_of(scope) is not None:
            return await self.ticketed({**scope, "sphere_origin_ok": False}, receive, send)
        trusted = origin is not None and origin_trusted(scope, origin)
        return await self.app({**scope, "sphere_origin_ok": trusted}, receive, send)


def gateway_stack(app: Any) -> Any:
    return OriginGate(AuthMiddlewareStack(app), ticketed=app)
