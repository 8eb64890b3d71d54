"""The report queue over REST: who sees which reports, and each resolution's effects."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Message, Report
from chat.services.messages import message_post
from communities.models import AuditEntry, Ban, Membership
from tests.chat.gateway_helpers import connect, until
from tests.conftest import World, build_world

pytestmark = pytest.mark.django_db


def report_on(world: World, author: Any, room: Any = None, reason: str = "spam") -> Report:
    message, _ = message_post(
        actor=author,
        room=room or world.general,
        body="bad words",
        client_msg_id=f"r{Message.objects.count()}",
    )
    return Report.objects.create(message=message, reporter=world.users["member"], reason=reason)


def resolve(world: World, standing: str, report: Report, **body: Any) -> Any:
    return world.client(standing).post(f"/api/v1/reports/{report.pk}/resolve", body, format="json")


@pytest.fixture(autouse=True)
def _fast(settings: Any) -> None:
    settings.MESSAGE_RATE = "100000/min"


@pytest.mark.parametrize(
    ("standing", "status"),
    [
        ("owner", 200),
        ("admin", 200),
        ("moderator", 200),
        ("member", 403),
        ("outsider", 403),
        ("banned", 403),
        ("anonymous", 401),
    ],
)
def test_who_reads_the_queue(world: World, standing: str, status: int) -> None:
    report_on(world, world.target)
    response = world.client(standing).get(
        f"/api/v1/communities/{world.community.slug}/reports/?status=open"
    )
    assert response.status_code == status
    if status == 200:
        body = response.json()
        assert [r["reason"] for r in body["results"]] == ["spam"]
        assert body["results"][0]["message"]["body"] == "bad words"


def test_reports_of_an_unreadable_room_stay_hidden(world: World) -> None:
    admin = world.users["admin"]
    report_on(world, admin, room=world.private_room)
    slug = world.community.slug
    seen_by_admin = world.client("admin").get(f"/api/v1/communities/{slug}/reports/").json()
    assert len(seen_by_admin["results"]) == 1
    # The moderator is a member of the private room in this world: remove them, then look.
    Membership.objects.filter(user=world.users["moderator"]).update(role="moderator")
    world.private_room.room_members.all().delete()
    seen = world.client("moderator").get(f"/api/v1/communities/{slug}/reports/").json()
    assert seen["results"] == []
    report = Report.objects.get()
    assert resolve(world, "moderator", report, action="dismiss").status_code == 404


def test_status_filter_and_bad_status(world: World) -> None:
    open_report = report_on(world, world.target)
    done = report_on(world, world.target, reason="old")
    resolve(world, "moderator", done, action="dismiss")
    slug = world.community.slug
    client = world.client("moderator")
    assert [
        r["id"]
        for r in client.get(f"/api/v1/communities/{slug}/reports/?status=open").json()["results"]
    ] == [open_report.pk]
    resolved = client.get(f"/api/v1/communities/{slug}/reports/?status=resolved").json()
    assert [(r["id"], r["resolution"]) for r in resolved["results"]] == [(done.pk, "dismiss")]
    bad = client.get(f"/api/v1/communities/{slug}/reports/?status=maybe")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")


def test_dismiss_and_a_second_resolution_conflicts(world: World) -> None:
    report = report_on(world, world.target)
    response = resolve(world, "moderator", report, action="dismiss")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["resolution"]) == ("resolved", "dismiss")
    assert AuditEntry.objects.filter(action="report.resolve").count() == 1
    again = resolve(world, "moderator", report, action="delete_message")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert not Message.objects.get(pk=report.message_id).deleted


def test_delete_message_by_rank(world: World) -> None:
    report = report_on(world, world.target)
    assert resolve(world, "moderator", report, action="delete_message").status_code == 200
    assert Message.objects.get(pk=report.message_id).deleted
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"message.delete", "report.resolve"} <= actions
    on_admin = report_on(world, world.users["admin"])
    refused = resolve(world, "moderator", on_admin, action="delete_message")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert Report.objects.get(pk=on_admin.pk).status == "open"


def test_mute_author_needs_minutes(world: World) -> None:
    report = report_on(world, world.target)
    missing = resolve(world, "moderator", report, action="mute_author")
    assert missing.status_code == 400
    assert "minutes" in missing.json()["fields"]
    assert resolve(world, "moderator", report, action="mute_author", minutes=15).status_code == 200
    assert Membership.objects.get(user=world.target).muted_until is not None


def test_ban_author(world: World) -> None:
    report = report_on(world, world.target)
    assert resolve(world, "moderator", report, action="ban_author").status_code == 200
    assert Ban.objects.filter(user=world.target, community=world.community).exists()
    assert not Membership.objects.filter(user=world.target).exists()


@pytest.mark.parametrize("body", [{"action": "nuke"}, {"action": "dismiss", "extra": 1}, {}])
def test_bad_resolve_bodies(world: World, body: dict[str, Any]) -> None:
    report = report_on(world, world.target)
    assert resolve(world, "moderator", report, **body).status_code == 400


@pytest.mark.django_db(transaction=True)
async def test_resolutions_take_effect_live() -> None:
    world = await database_sync_to_async(build_world)("public")
    report = await database_sync_to_async(report_on)(world, world.target)
    author = await connect(world.target, sync={})
    watcher = await connect(world.users["admin"], sync={})
    response = await database_sync_to_async(resolve)(
        world, "moderator", report, action="delete_message"
    )
    assert response.status_code == 200
    for comm in (author, watcher):
        assert (await until(comm, "message.deleted"))["message_id"] == report.message_id
    second = await database_sync_to_async(report_on)(world, world.target)
    await database_sync_to_async(resolve)(world, "moderator", second, action="ban_author")
    removed = await until(author, "room.removed")
    assert (removed["room"], removed["reason"]) == (world.general.pk, "banned")
    await author.disconnect()
    await watcher.disconnect()


def test_a_deleted_message_cannot_be_reported(world: World) -> None:
    report = report_on(world, world.target)
    Message.objects.filter(pk=report.message_id).update(deleted=True, body="")
    response = world.client("admin").post(
        f"/api/v1/messages/{report.message_id}/report", {"reason": "late"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "conflict")
