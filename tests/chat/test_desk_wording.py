"""How the moderators' desk speaks: Sphere's titles, the community beside the room in the report
queue, messages worded for people, and "automod terms" wherever the desk names them."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client

from chat.models import BlockedTerm, Report
from chat.services.messages import message_post
from communities.models import Ban, Membership
from communities.services.desk import desk_grant
from tests.conftest import World
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

QUEUE = "/admin/chat/report/"


@pytest.fixture
def desk(world: World) -> Client:
    desk_grant(user=world.users["moderator"])
    client = Client()
    client.force_login(world.users["moderator"])
    return client


def reported(world: World, author: Any, key: str) -> Report:
    message, _ = message_post(
        actor=author, room=world.general, body=f"say {key}", client_msg_id=key
    )
    return Report.objects.create(message=message, reporter=world.users["member"], reason="rude")


def post(client: Client, url: str, data: dict[str, Any]) -> str:
    response = client.post(url, data, follow=True)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def said(page: str) -> list[str]:
    """The texts of the page's message list (Django's ``ul.messagelist``)."""
    if '<ul class="messagelist">' not in page:
        return []
    block = page.split('<ul class="messagelist">', 1)[1].split("</ul>", 1)[0]
    return [item.split(">", 1)[1].split("</li>", 1)[0] for item in block.split("<li")[1:]]


def test_the_desk_is_titled_sphere(desk: Client) -> None:
    page = desk.get("/admin/").content.decode()
    assert "Django administration" not in page
    assert "Site administration" not in page
    assert "<title>The moderators&#x27; desk | Sphere</title>" in page
    assert '<a href="/admin/">Sphere</a>' in page


def test_the_queue_shows_the_community_beside_the_room(desk: Client, world: World) -> None:
    reported(world, world.target, "r1")
    page = desk.get(QUEUE).content.decode()
    header = page.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert header.index("column-community_link") < header.index("column-room_link")
    row = page.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    community_url = f"/admin/communities/community/{world.community.pk}/change/"
    assert f'<a href="{community_url}">{world.community}</a>' in row
    assert row.index(community_url) < row.index(f"/admin/communities/room/{world.general.pk}/")


@pytest.mark.parametrize(
    ("action", "one", "two"),
    [
        ("dismiss", "Dismissed the report.", "Dismissed 2 reports."),
        (
            "delete_message",
            "Deleted the reported message.",
            "Deleted 2 reported messages.",
        ),
        (
            "mute_author_1h",
            "Muted the author for 1 hour.",
            "Muted the authors of 2 reports for 1 hour.",
        ),
        (
            "mute_author_7d",
            "Muted the author for 1 week.",
            "Muted the authors of 2 reports for 1 week.",
        ),
        (
            "ban_author",
            "Banned the author from the community.",
            "Banned the authors of 2 reports from the community.",
        ),
    ],
)
def test_resolutions_are_worded_for_people(
    desk: Client, world: World, action: str, one: str, two: str
) -> None:
    authors = [MembershipFactory(community=world.community).user for _ in range(3)]
    single = reported(world, authors[0], "a1")
    assert said(post(desk, QUEUE, {"action": action, "_selected_action": [single.pk]})) == [one]
    pair = [reported(world, authors[1], "a2"), reported(world, authors[2], "a3")]
    page = post(desk, QUEUE, {"action": action, "_selected_action": [r.pk for r in pair]})
    assert said(page) == [two]
    assert "resolved:" not in page
    assert "report(s)" not in page


def test_a_report_s_mute_button_says_for_how_long(desk: Client, world: World) -> None:
    report = reported(world, world.target, "b1")
    page = post(desk, f"{QUEUE}{report.pk}/resolve/", {"resolve": "mute_author", "minutes": "90"})
    assert said(page) == ["Muted the author for 1 hour, 30 minutes."]


def test_a_refusal_names_the_report(desk: Client, world: World) -> None:
    report = reported(world, world.users["admin"], "c1")
    page = post(desk, QUEUE, {"action": "ban_author", "_selected_action": [report.pk]})
    [message] = said(page)
    assert message.startswith(f"Resolving report {report.pk}: refused. ")


def test_membership_and_ban_actions_are_worded_for_people(desk: Client, world: World) -> None:
    target = Membership.objects.get(user=world.target)
    page = post(desk, "/admin/communities/membership/",
                {"action": "mute_24h", "_selected_action": [target.pk]})  # fmt: skip
    assert said(page) == [f"Muted {world.target.username} for 1 day."]
    page = post(desk, "/admin/communities/membership/",
                {"action": "unmute", "_selected_action": [target.pk]})  # fmt: skip
    assert said(page) == [f"Lifted the mute of {world.target.username}."]
    ban = Ban.objects.get(user=world.users["banned"])
    page = post(desk, "/admin/communities/ban/", {"action": "lift", "_selected_action": [ban.pk]})
    assert said(page) == [f"Lifted the ban of {world.users['banned'].username}."]


def test_automod_terms_are_called_so_everywhere(desk: Client, world: World) -> None:
    index = desk.get("/admin/").content.decode()
    assert "Automod terms" in index
    assert "Blocked terms" not in index
    listing = desk.get("/admin/chat/blockedterm/").content.decode()
    assert "Select automod term to change" in listing
    assert "Add automod term" in listing
    assert "blocked term" not in listing.lower()
    term = BlockedTerm.objects.create(community=world.community, term="darn")
    page = post(desk, "/admin/chat/blockedterm/",
                {"action": "remove_terms", "_selected_action": [term.pk]})  # fmt: skip
    assert said(page) == ['Removed the term "darn".']
    assert "blocked term" not in page.lower()
