"""The handshake's Origin rules (docs/protocol.md, "Connecting"): a session cookie counts only
with the server's own origin, scheme and port included, or a trusted one; a ticket needs no
Origin, but a present one must still name an allowed host."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from sphere.asgi import application
from tests.chat.gateway_helpers import recv, ticket
from tests.conftest import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)

HOST = b"chat.example:8443"


@pytest.fixture
def world(settings: Any) -> World:
    settings.ALLOWED_HOSTS = ["chat.example", "127.0.0.1"]
    return build_world("public")


async def cookie_of(world: World) -> tuple[bytes, bytes]:
    client = Client()
    await database_sync_to_async(client.force_login)(world.users["member"])
    return b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()


async def opens(headers: list[tuple[bytes, bytes]], path: str = "/ws/v1/", **scope: Any) -> bool:
    comm = WebsocketCommunicator(application, path, headers=headers)
    comm.scope.update(scope)
    connected, _ = await comm.connect()
    if connected:
        assert (await recv(comm))["type"] == "hello"
        await comm.disconnect()
    return bool(connected)


@pytest.mark.parametrize(
    ("origin", "scheme", "expected"),
    [
        (b"http://chat.example:8443", "ws", True),  # the server's own origin
        (b"https://chat.example:8443", "wss", True),
        (b"http://chat.example:8444", "ws", False),  # same host, another port
        (b"http://chat.example", "ws", False),  # same host, default port
        (b"https://chat.example:8443", "ws", False),  # scheme mismatch
        (b"http://chat.example:8443", "wss", False),
        (b"http://127.0.0.1:8443", "ws", False),  # another allowed host
    ],
)
async def test_a_cookie_needs_the_servers_own_origin(
    world: World, origin: bytes, scheme: str, expected: bool
) -> None:
    cookie = await cookie_of(world)
    headers = [cookie, (b"host", HOST), (b"origin", origin)]
    assert await opens(headers, scheme=scheme) is expected


async def test_a_cookie_with_a_host_outside_allowed_hosts_is_refused(world: World) -> None:
    cookie = await cookie_of(world)
    headers = [cookie, (b"host", b"evil.example"), (b"origin", b"http://chat.example")]
    assert await opens(headers) is False


async def test_behind_a_proxy_the_forwarded_scheme_counts(world: World, settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = await cookie_of(world)
    base = [cookie, (b"host", b"chat.example")]
    https = (b"x-forwarded-proto", b"https")
    assert await opens([*base, https, (b"origin", b"https://chat.example")])
    assert not await opens([*base, https, (b"origin", b"http://chat.example")])
    assert not await opens([*base, (b"origin", b"https://chat.example")])


@pytest.mark.parametrize(
    ("trusted", "origin", "expected"),
    [
        ("https://app.chat.example", b"https://app.chat.example", True),
        ("https://app.chat.example", b"http://app.chat.example", False),
        ("https://app.chat.example", b"https://app.chat.example:444", False),
        ("https://*.chat.example", b"https://web.chat.example", True),
        ("https://*.chat.example", b"http://web.chat.example", False),
    ],
)
async def test_a_trusted_origin_may_bring_the_cookie(
    world: World, settings: Any, trusted: str, origin: bytes, expected: bool
) -> None:
    settings.ALLOWED_HOSTS = [".chat.example"]
    settings.CSRF_TRUSTED_ORIGINS = [trusted]
    cookie = await cookie_of(world)
    headers = [cookie, (b"host", b"api.chat.example"), (b"origin", origin)]
    assert await opens(headers) is expected


async def test_a_ticket_needs_no_origin_but_a_present_one_must_be_allowed(world: World) -> None:
    user = world.users["member"]
    assert await opens([], f"/ws/v1/?ticket={await ticket(user)}")
    other_port = [(b"host", HOST), (b"origin", b"http://chat.example:9999")]
    assert await opens(other_port, f"/ws/v1/?ticket={await ticket(user)}")
    foreign = [(b"host", HOST), (b"origin", b"http://evil.example:8443")]
    assert not await opens(foreign, f"/ws/v1/?ticket={await ticket(user)}")
