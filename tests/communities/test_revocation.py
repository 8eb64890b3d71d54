"""Disabling an account and revoking a token take effect at once: on REST, on new sockets and
on the sockets already open (docs/api.md, "Authentication"; docs/protocol.md, "Closing
codes"). Runs in the mode the environment selects (the scaled mode: through Redis)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.models import Message
from communities.models import WsTicket
from communities.services.accounts import token_reference, ws_ticket_redeem
from fanout.items import CloseBatch, CloseItem, decode_batches, decode_item, encode
from fanout.publish import publish_close
from fanout.redis import publisher
from sphere.asgi import application
from tests.chat.conftest import post
from tests.chat.gateway_helpers import TIMEOUT, closed_with, connect, quiet, recv, send, ticket
from tests.conftest import World, build_world, client_for
from tests.factories import PASSWORD
from tests.fanout.test_publish import PARTITIONS, in_streams, scaled  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world() -> World:
    return build_world("public")


@database_sync_to_async
def _call(client: APIClient, method: str, path: str, body: Any = None) -> Any:
    return getattr(client, method)(path, body, format="json")


async def _token_socket(client: APIClient) -> Any:
    """A socket opened with a ticket the client's credentials got over REST."""
    answer = await _call(client, "post", "/api/v1/auth/ws-ticket")
    assert answer.status_code == 201, answer.content
    comm = WebsocketCommunicator(application, f"/ws/v1/?ticket={answer.json()['ticket']}")
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    assert (await recv(comm))["type"] == "hello"
    return comm


@database_sync_to_async
def _disable(user: Any) -> None:
    user.is_active = False
    user.save()


async def _still_open(comm: Any) -> None:
    await quiet(comm)  # a ping is answered
    await comm.disconnect()


def test_close_items_and_batches_travel_encoded() -> None:
    item = CloseItem((3, 4), 4401, "ab" * 32, partition=3)
    assert decode_item(encode(item)) == item
    batch = CloseBatch(4509, "", (3,))
    assert decode_batches(encode(batch)) == (batch,)


@pytest.mark.services
def test_a_close_redis_refuses_is_retried(scaled: Any) -> None:  # noqa: F811
    """A close is not an ephemeral frame: like an access change it is retried until Redis
    takes it."""
    credential = "ab" * 32
    try:
        scaled.FANOUT_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
        assert publish_close(user_ids=[7, 5], code=4401, credential=credential) is False
        scaled.FANOUT_REDIS_URL = ""
        expected = {5 % PARTITIONS: [CloseItem((7, 5), 4401, credential, partition=5)]}
        deadline = time.monotonic() + TIMEOUT
        while in_streams(PARTITIONS) != expected:
            assert time.monotonic() < deadline, "the close was never retried"
            time.sleep(0.05)
    finally:
        publisher.retrier.pending.clear()


# --- a disabled account -------------------------------------------------------------------------


async def test_disabling_closes_every_socket_with_4509_and_nothing_more_is_posted(
    world: World,
) -> None:
    member = world.users["member"]
    by_token = await _token_socket(await database_sync_to_async(client_for)(member))
    by_ticket = await connect(member)
    other = await connect(world.users["admin"])

    await _disable(member)

    assert await closed_with(by_token) == 4509
    assert await closed_with(by_ticket) == 4509
    # What the closed socket still sends is not acted on.
    frame = {"type": "message.send", "room": world.general.id, "client_msg_id": "late",
             "body": "after the ban hammer", "ref": "late"}  # fmt: skip
    await send(by_ticket, frame)
    await by_ticket.disconnect()
    await by_token.disconnect()
    # The writer takes sends in order: once a later one is stored, the late one would be too.
    await database_sync_to_async(post)(world.users["admin"], world.general, "later")
    assert not await database_sync_to_async(Message.objects.filter(author=member).exists)()
    await _still_open(other)  # another user's socket is untouched


async def test_deleting_an_account_closes_its_sockets_with_4509(world: World) -> None:
    member = world.users["member"]
    comm = await connect(member)
    other = await connect(world.users["admin"])
    await database_sync_to_async(member.delete)()
    assert await closed_with(comm) == 4509
    await _still_open(other)


async def test_a_disabled_account_gets_no_ticket_and_no_socket(world: World) -> None:
    member = world.users["member"]
    client = await database_sync_to_async(client_for)(member)
    answer = await _call(client, "post", "/api/v1/auth/ws-ticket")
    assert answer.status_code == 201
    await _disable(member)
    assert (await _call(client, "post", "/api/v1/auth/ws-ticket")).status_code == 401
    comm = WebsocketCommunicator(application, f"/ws/v1/?ticket={answer.json()['ticket']}")
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    assert await closed_with(comm) == 4509


async def test_a_ticket_of_a_token_revoked_while_it_was_issued_opens_no_socket(
    world: World,
) -> None:
    """A revocation that commits between a ticket request's authentication and its insert
    deletes no ticket and closes no socket: the socket is checked again once registered."""
    member = world.users["member"]
    client = await database_sync_to_async(client_for)(member)
    answer = await _call(client, "post", "/api/v1/auth/ws-ticket")
    assert answer.status_code == 201
    # The token goes without the service (its tickets and sockets untouched), as in that race.
    await database_sync_to_async(Token.objects.filter(user=member).delete)()
    comm = WebsocketCommunicator(application, f"/ws/v1/?ticket={answer.json()['ticket']}")
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    assert await closed_with(comm) == 4401
    # A socket of a session (no token) is not concerned.
    await _still_open(await connect(member))


async def test_an_account_disabled_while_its_socket_opened_is_closed_with_4509(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disabled after its ticket was redeemed and before the socket registered (the close of
    the disable then finds no socket): the check after registering closes it."""
    from chat.gateway import consumer

    member = world.users["member"]
    redeem = consumer.ws_ticket_redeem

    def redeem_then_disable(**kwargs: Any) -> Any:
        user = redeem(**kwargs)
        assert user is not None
        User.objects.filter(pk=user.pk).update(is_active=False)  # no close is sent
        return user

    monkeypatch.setattr(consumer, "ws_ticket_redeem", redeem_then_disable)
    comm = WebsocketCommunicator(application, f"/ws/v1/?ticket={await ticket(member)}")
    connected, _ = await comm.connect(timeout=TIMEOUT)
    assert connected
    assert await closed_with(comm) == 4509


def test_saving_other_fields_of_an_active_account_closes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from communities.services import accounts

    published: list[dict[str, Any]] = []
    monkeypatch.setattr(accounts, "publish_close", lambda **kw: published.append(kw))
    member = world.users["member"]
    member.first_name = "Ada"
    member.save()
    member.is_active = False
    member.save(update_fields=["first_name"])  # is_active not saved: still active in the db
    assert published == []
    member.save()
    assert published == [{"user_ids": [member.pk], "code": 4509}]


# --- revoking a token ---------------------------------------------------------------------------


async def _revoking(world: World, method: str, path: str) -> None:
    member = world.users["member"]
    client = await database_sync_to_async(client_for)(member)
    key = (await database_sync_to_async(Token.objects.get)(user=member)).key
    by_token = await _token_socket(client)
    unused = (await _call(client, "post", "/api/v1/auth/ws-ticket")).json()["ticket"]
    by_ticket = await connect(member)  # the same user, another credential

    answer = await _call(client, method, path)

    assert answer.status_code == 204, answer.content
    assert (await _call(client, "get", "/api/v1/me")).status_code == 401  # at once on REST
    assert await closed_with(by_token) == 4401
    await by_token.disconnect()
    await _still_open(by_ticket)
    # A ticket the token got before it was revoked opens nothing any more.
    assert await database_sync_to_async(ws_ticket_redeem)(ticket=unused) is None
    # The password gets a new token, which works.
    issued = await _call(
        APIClient(), "post", "/api/v1/auth/token",
        {"username": member.username, "password": PASSWORD},
    )  # fmt: skip
    assert issued.status_code == 200
    fresh = issued.json()["token"]
    assert fresh != key
    fresh_client = APIClient()
    fresh_client.credentials(HTTP_AUTHORIZATION=f"Token {fresh}")
    assert (await _call(fresh_client, "get", "/api/v1/me")).status_code == 200
    await _still_open(await _token_socket(fresh_client))


async def test_delete_token_revokes_it_on_rest_and_on_its_sockets(world: World) -> None:
    await _revoking(world, "delete", "/api/v1/auth/token")


async def test_logout_with_a_token_revokes_it(world: World) -> None:
    await _revoking(world, "post", "/api/v1/auth/logout")


def test_a_ticket_records_a_reference_of_its_token_never_the_token(world: World) -> None:
    member = world.users["member"]
    client = client_for(member)
    key = Token.objects.get(user=member).key
    assert client.post("/api/v1/auth/ws-ticket").status_code == 201
    ticket = WsTicket.objects.get(user=member)
    assert ticket.credential == token_reference(key)
    assert key not in ticket.credential


def test_delete_token_needs_the_token_itself(world: World) -> None:
    member = world.users["member"]
    client = APIClient()
    client.force_login(member)
    answer = client.delete("/api/v1/auth/token")
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"
    assert APIClient().delete("/api/v1/auth/token").status_code == 401


def test_logout_with_a_session_ends_it_and_leaves_the_token(world: World) -> None:
    member = world.users["member"]
    token = client_for(member)
    browser = APIClient(enforce_csrf_checks=False)
    browser.force_login(member)
    assert browser.post("/api/v1/auth/logout").status_code == 204
    assert browser.get("/api/v1/me").status_code == 401
    assert token.get("/api/v1/me").status_code == 200
