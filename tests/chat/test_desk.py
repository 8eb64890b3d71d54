"""The report queue at the desk: each action through the admin, as a desk moderator, checked
on the database, the audit log and the live frames of connected clients."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat.models import Message, Report
from chat.services.messages import message_post
from communities.models import AuditEntry, Ban, Membership
from communities.services.desk import desk_grant
from tests.chat.gateway_helpers import connect, quiet, until
from tests.conftest import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "/admin/chat/report/"


@pytest.fixture
def world() -> World:
    return build_world("public")


def desk_client(world: World) -> Client:
    desk_grant(user=world.users["moderator"])
    client = Client()
    client.force_login(world.users["moderator"])
    return client


def reported(world: World, author: Any, body: str, key: str) -> Report:
    message, _ = message_post(actor=author, room=world.general, body=body, client_msg_id=key)
    return Report.objects.create(message=message, reporter=world.users["member"], reason="rude")


async def act(client: Client, action: str, reports: list[Report]) -> str:
    response = await sync_to_async(client.post)(
        QUEUE, {"action": action, "_selected_action": [r.pk for r in reports]}, follow=True
    )
    assert response.status_code == 200
    return response.content.decode()


async def test_banning_the_author_removes_the_room_from_their_sockets(world: World) -> None:
    client = await sync_to_async(desk_client)(world)
    report = await sync_to_async(reported)(world, world.target, "nasty", "n1")
    target = await connect(world.target, sync={})
    page = await act(client, "ban_author", [report])
    assert "Banned the author from the community." in page
    removed = await until(target, "room.removed")
    assert removed == {"type": "room.removed", "room": world.general.pk, "reason": "banned"}
    await report.arefresh_from_db()
    assert (report.status, report.resolution) == ("resolved", "ban_author")
    assert await Ban.objects.filter(community=world.community, user=world.target).aexists()
    actions = [a async for a in AuditEntry.objects.values_list("action", flat=True)]
    assert {"member.ban", "report.resolve"} <= set(actions)
    await target.disconnect()


async def test_deleting_the_message_reaches_every_connection_of_the_room(world: World) -> None:
    client = await sync_to_async(desk_client)(world)
    report = await sync_to_async(reported)(world, world.target, "spam spam", "s1")
    readers = [await connect(world.users[r], sync={}) for r in ("member", "admin")]
    await act(client, "delete_message", [report])
    for reader in readers:
        deleted = await until(reader, "message.deleted")
        assert deleted["message_id"] == report.message_id
        await reader.disconnect()
    message = await Message.objects.aget(pk=report.message_id)
    assert (message.deleted, message.body) == (True, "")
    entry = await AuditEntry.objects.aget(action="message.delete")
    assert entry.actor_id == world.users["moderator"].pk


async def test_muting_and_dismissing_from_the_queue(world: World) -> None:
    client = await sync_to_async(desk_client)(world)
    muted = await sync_to_async(reported)(world, world.target, "loud", "l1")
    dismissed = await sync_to_async(reported)(world, world.users["member"], "fine", "f1")
    await act(client, "mute_author_24h", [muted])
    await act(client, "dismiss", [dismissed])
    membership = await Membership.objects.aget(user=world.target)
    assert membership.muted_until is not None
    await dismissed.arefresh_from_db()
    assert (dismissed.status, dismissed.resolution) == ("resolved", "dismiss")
    entries = [a async for a in AuditEntry.objects.values_list("action", flat=True)]
    assert entries.count("report.resolve") == 2
    assert "member.mute" in entries


async def test_several_reports_at_once_and_the_rank_rule(world: World) -> None:
    client = await sync_to_async(desk_client)(world)
    mine = await sync_to_async(reported)(world, world.target, "one", "o1")
    theirs = await sync_to_async(reported)(world, world.users["admin"], "two", "t2")
    page = await act(client, "ban_author", [mine, theirs])
    assert "refused" in page  # a moderator does not outrank an admin
    await mine.arefresh_from_db()
    await theirs.arefresh_from_db()
    assert (mine.status, theirs.status) == ("resolved", "open")
    assert not await Ban.objects.filter(user=world.users["admin"]).aexists()


async def test_a_report_s_page_shows_the_context_and_resolves_with_its_buttons(
    world: World,
) -> None:
    client = await sync_to_async(desk_client)(world)
    for n in range(4):
        await sync_to_async(message_post)(
            actor=world.users["member"],
            room=world.general,
            body=f"before {n}",
            client_msg_id=f"b{n}",
        )
    report = await sync_to_async(reported)(world, world.target, "the bad one", "bad")
    await sync_to_async(message_post)(
        actor=world.users["member"], room=world.general, body="after it", client_msg_id="a1"
    )
    page = (await sync_to_async(client.get)(f"{QUEUE}{report.pk}/change/")).content.decode()
    for text in ("before 1", "before 3", "the bad one", "after it", "Mute the author"):
        assert text in page
    assert "before 0" not in page  # three before it, not four
    target = await connect(world.target, sync={})
    response = await sync_to_async(client.post)(
        f"{QUEUE}{report.pk}/resolve/", {"resolve": "mute_author", "minutes": "30"}
    )
    assert response.status_code == 302
    await report.arefresh_from_db()
    assert (report.status, report.resolution) == ("resolved", "mute_author")
    membership = await Membership.objects.aget(user=world.target)
    assert membership.muted_until is not None
    await quiet(target, "room.removed")  # muted, not removed: still a reader
    await target.disconnect()


async def test_open_reports_come_first_in_the_queue(world: World) -> None:
    client = await sync_to_async(desk_client)(world)
    old = await sync_to_async(reported)(world, world.target, "old", "old")
    await act(client, "dismiss", [old])
    fresh = await sync_to_async(reported)(world, world.users["member"], "fresh", "fresh")
    page = (await sync_to_async(client.get)(QUEUE)).content.decode()
    assert page.index(f"{QUEUE}{fresh.pk}/change/") < page.index(f"{QUEUE}{old.pk}/change/")
