"""Direct messages (docs/dms.md): opening, who may be messaged, readers are the members only,
group DMs (leave, add), site terms, reports to site staff."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from chat.models import BlockedTerm, Message, Report
from chat.services import reports as report_services
from chat.services.messages import message_delete, message_post
from communities.models import Membership, Profile, Room, RoomMember
from communities.services import dms
from sphere.errors import Conflict, Forbidden, NotFound
from tests.conftest import World, build_world, client_for, in_threads
from tests.factories import CommunityFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

STANDINGS = ["owner", "admin", "moderator", "member", "outsider", "banned"]


def _dm(world: World, *names: str) -> Room:
    first, *others = [world.users.get(n, world.target) for n in names]
    room, created = dms.dm_open(actor=first, user_ids=[u.pk for u in others])
    assert created
    return room


def _post(user: Any, room: Room, body: str, cid: str) -> Message:
    message, _ = message_post(actor=user, room=room, body=body, client_msg_id=cid)
    return message


def test_open_creates_a_dm_room_and_finds_it_again_by_its_member_set(world: World) -> None:
    member, target = world.users["member"], world.target
    answer = client_for(member).post("/api/v1/dms/", {"user_ids": [target.pk]}, format="json")
    assert answer.status_code == 201, answer.json()
    room = answer.json()
    assert room["kind"] == "dm"
    assert room["community"] is None
    assert room["name"] == ""
    assert [m["id"] for m in room["members"]] == sorted([member.pk, target.pk])
    # The other member opening it (their own id and repeats ignored) finds the same room.
    again = client_for(target).post(
        "/api/v1/dms/", {"user_ids": [member.pk, target.pk, member.pk]}, format="json"
    )
    assert again.status_code == 200
    assert again.json()["id"] == room["id"]
    assert Room.objects.filter(kind="dm").count() == 1


@pytest.mark.parametrize(
    "user_ids",
    [[], "x", [True], ["one"], [0], list(range(1000, 1010))],
    ids=["empty", "not-a-list", "bool", "string-id", "zero", "ten-others"],
)
def test_open_refuses_bad_member_lists(world: World, user_ids: Any) -> None:
    answer = client_for(world.users["member"]).post(
        "/api/v1/dms/", {"user_ids": user_ids}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid"


def test_open_with_only_oneself_is_invalid(world: World) -> None:
    member = world.users["member"]
    answer = client_for(member).post("/api/v1/dms/", {"user_ids": [member.pk]}, format="json")
    assert answer.status_code == 400


def test_who_may_be_messaged_one_answer_for_every_refusal(world: World) -> None:
    member = world.users["member"]
    stranger = UserFactory()  # shares no community
    disabled = MembershipFactory(community=world.community).user
    disabled.is_active = False
    disabled.save()
    closed = MembershipFactory(community=world.community).user
    Profile.objects.create(user=closed, dm_policy="none")
    blocker = MembershipFactory(community=world.community).user
    dms.DM_BLOCK_CHECKS.append(lambda sender, recipient: recipient == blocker.pk)
    try:
        answers = [
            client_for(member).post("/api/v1/dms/", {"user_ids": [u]}, format="json")
            for u in (stranger.pk, disabled.pk, closed.pk, blocker.pk, 10**9)
        ]
    finally:
        dms.DM_BLOCK_CHECKS.pop()
    assert {a.status_code for a in answers} == {403}
    assert len({a.content for a in answers}) == 1  # nothing tells a block from a policy
    assert not Room.objects.filter(kind="dm").exists()


def test_dm_policy_anyone_lets_strangers_in_and_me_reports_it(world: World) -> None:
    stranger = UserFactory()
    member = world.users["member"]
    me = client_for(member)
    assert me.get("/api/v1/me").json()["dm_policy"] == "communities"
    assert me.patch("/api/v1/me", {"dm_policy": "anyone"}, format="json").json()["dm_policy"] == (
        "anyone"
    )
    answer = client_for(stranger).post("/api/v1/dms/", {"user_ids": [member.pk]}, format="json")
    assert answer.status_code == 201
    assert me.patch("/api/v1/me", {"dm_policy": "nobody"}, format="json").status_code == 400
    assert me.patch("/api/v1/me", {"dm_polcy": "none"}, format="json").status_code == 400


def test_an_existing_dm_stays_open_after_the_policy_closes(world: World) -> None:
    room = _dm(world, "member", "target")
    Profile.objects.create(user=world.target, dm_policy="none")
    again, created = dms.dm_open(actor=world.users["member"], user_ids=[world.target.pk])
    assert (again.pk, created) == (room.pk, False)
    _post(world.users["member"], room, "still here", "c1")


def test_two_racing_creates_of_one_set_give_one_room(transactional_db: Any) -> None:
    world = build_world("public")
    a, b = world.users["member"], world.target
    results = in_threads(
        [
            lambda: dms.dm_open(actor=a, user_ids=[b.pk]),
            lambda: dms.dm_open(actor=b, user_ids=[a.pk]),
        ]
    )
    rooms = {room.pk for room, _ in results}
    assert len(rooms) == 1
    assert sorted(created for _, created in results) == [False, True]
    assert RoomMember.objects.filter(room_id=rooms.pop()).count() == 2


@pytest.mark.parametrize("standing", STANDINGS)
def test_no_community_role_reads_a_dm_it_is_not_in(world: World, standing: str) -> None:
    room = _dm(world, "member", "target")
    message = _post(world.users["member"], room, "zebra between us", "c1")
    if standing == "member":  # the member of the community who is not in this DM
        room = dms.dm_open(actor=world.target, user_ids=[world.users["admin"].pk])[0]
        message = _post(world.target, room, "yak between us", "c2")
    client = world.client(standing)
    for path in (
        f"/api/v1/rooms/{room.pk}/",
        f"/api/v1/rooms/{room.pk}/messages",
        f"/api/v1/rooms/{room.pk}/members",
        f"/api/v1/rooms/{room.pk}/presence",
        f"/api/v1/messages/{message.pk}/",
    ):
        assert client.get(path).status_code == 404, path
    sent = client.post(
        f"/api/v1/rooms/{room.pk}/messages", {"body": "hi", "client_msg_id": "x"}, format="json"
    )
    assert sent.status_code == 404
    assert (
        client.post(f"/api/v1/rooms/{room.pk}/read", {"seq": 1}, format="json").status_code == 404
    )
    assert client.put(f"/api/v1/messages/{message.pk}/reactions/👍/").status_code == 404
    reported = client.post(f"/api/v1/messages/{message.pk}/report", {"reason": "x"}, format="json")
    assert reported.status_code == 404
    assert client.post(f"/api/v1/rooms/{room.pk}/leave").status_code == 404
    found = client.get("/api/v1/search", {"q": message.body.split()[0]}).json()["results"]
    assert found == []
    rooms = client.get("/api/v1/me/rooms").json()["results"]
    assert room.pk not in {r["id"] for r in rooms}


def test_members_read_post_react_edit_and_search_their_dm(world: World) -> None:
    room = _dm(world, "member", "target")
    member, target = world.users["member"], world.target
    client = client_for(target)
    sent = client.post(
        f"/api/v1/rooms/{room.pk}/messages",
        {
            "body": f"hello @{member.username} and @{world.users['admin'].username}",
            "client_msg_id": "k",
        },
        format="json",
    )
    assert sent.status_code == 201, sent.json()
    # Only members of the DM are mentioned, whatever their community role.
    assert sent.json()["mentions"] == [member.pk]
    message_id = sent.json()["id"]
    assert client_for(member).put(f"/api/v1/messages/{message_id}/reactions/👍/").status_code == 200
    edited = client.patch(
        f"/api/v1/messages/{message_id}/", {"body": f"bye @{member.username}"}, format="json"
    )
    assert edited.status_code == 200
    assert edited.json()["mentions"] == [member.pk]
    history = client_for(member).get(f"/api/v1/rooms/{room.pk}/messages").json()["results"]
    assert [m["body"] for m in history] == [f"bye @{member.username}"]
    found = client_for(member).get("/api/v1/search", {"q": "bye"}).json()["results"]
    assert [m["id"] for m in found] == [message_id]
    detail = client_for(member).get(f"/api/v1/rooms/{room.pk}/").json()
    assert detail["unread"] == 1
    listed = client_for(member).get(f"/api/v1/rooms/{room.pk}/members").json()["results"]
    assert [m["user"]["id"] for m in listed] == sorted([member.pk, target.pk])
    assert {m["role"] for m in listed} == {"member"}


def test_a_dm_has_no_admins(world: World) -> None:
    room = _dm(world, "owner", "target")
    owner = client_for(world.users["owner"])
    assert (
        owner.patch(f"/api/v1/rooms/{room.pk}/", {"topic": "x"}, format="json").status_code == 403
    )
    assert owner.delete(f"/api/v1/rooms/{room.pk}/").status_code == 403
    removed = owner.delete(f"/api/v1/rooms/{room.pk}/members/{world.target.pk}")
    assert removed.status_code == 403
    assert RoomMember.objects.filter(room=room).count() == 2


def test_site_terms_apply_in_dms_and_community_terms_do_not(world: World) -> None:
    room = _dm(world, "member", "target")
    BlockedTerm.objects.create(community=None, term="sitebad", action="block")
    BlockedTerm.objects.create(community=world.community, term="localbad", action="block")
    client = client_for(world.users["member"])
    refused = client.post(
        f"/api/v1/rooms/{room.pk}/messages",
        {"body": "so sitebad", "client_msg_id": "a"},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "blocked_content"
    allowed = client.post(
        f"/api/v1/rooms/{room.pk}/messages",
        {"body": "so localbad", "client_msg_id": "b"},
        format="json",
    )
    assert allowed.status_code == 201
    in_room = client.post(
        f"/api/v1/rooms/{world.general.pk}/messages",
        {"body": "so sitebad", "client_msg_id": "c"},
        format="json",
    )
    assert in_room.status_code == 201  # a community's rooms follow the community's terms


def test_a_flag_term_in_a_dm_opens_a_report_for_site_staff_only(world: World) -> None:
    room = _dm(world, "member", "target")
    BlockedTerm.objects.create(community=None, term="sus", action="flag")
    message = _post(world.users["member"], room, "kinda sus", "a")
    report = Report.objects.get(message=message)
    assert report.reporter is None
    for standing in ("owner", "admin", "moderator"):
        queue = world.client(standing).get(f"/api/v1/communities/{world.community.slug}/reports/")
        assert queue.json()["results"] == []
        resolved = world.client(standing).post(
            f"/api/v1/reports/{report.pk}/resolve", {"action": "dismiss"}, format="json"
        )
        assert resolved.status_code == 404


def test_site_staff_resolve_a_dm_report_by_deleting_the_message(world: World) -> None:
    room = _dm(world, "member", "target")
    message = _post(world.users["member"], room, "rude", "a")
    report = report_services.report_create(actor=world.target, message=message, reason="rude")
    staff = User.objects.create_superuser("siteadmin", password="pw-long-enough-1")
    with pytest.raises(Conflict):
        report_services.report_resolve(actor=staff, report=report, action="ban_author")
    report_services.report_resolve(actor=staff, report=report, action="delete_message")
    message.refresh_from_db()
    assert message.deleted
    # Nobody else deletes another member's DM message.
    other = _post(world.target, room, "mine", "b")
    with pytest.raises(Forbidden):
        message_delete(actor=world.users["member"], message=other)


def test_reports_of_dms_show_in_the_admin_to_superusers_alone(world: World, client: Any) -> None:
    room = _dm(world, "member", "target")
    message = _post(world.users["member"], room, "rude words", "a")
    report_services.report_create(actor=world.target, message=message, reason="rude")
    moderator = world.users["moderator"]
    moderator.is_staff = True
    moderator.save()
    client.force_login(moderator)
    assert b"rude words" not in client.get("/admin/chat/report/").content
    assert client.get(f"/admin/chat/message/{message.pk}/change/").status_code in (302, 403, 404)
    staff = User.objects.create_superuser("siteadmin", password="pw-long-enough-1")
    client.force_login(staff)
    page = client.get("/admin/chat/report/?message__room__kind__exact=dm")
    assert b"rude words" in page.content
    assert b"direct message" in page.content


def test_group_dm_leave_and_add(world: World) -> None:
    owner, member, target = world.users["owner"], world.users["member"], world.target
    room = _dm(world, "member", "target", "owner")
    assert room.dm_key == ",".join(str(i) for i in sorted([owner.pk, member.pk, target.pk]))
    # Add: a member adds someone they may message; the set's key follows.
    admin = world.users["admin"]
    added = client_for(member).post(
        f"/api/v1/rooms/{room.pk}/members", {"user_id": admin.pk}, format="json"
    )
    assert added.status_code == 201, added.json()
    assert added.json()["user"]["id"] == admin.pk
    _post(member, room, "before", "a")
    # The newcomer reads the whole history (docs/dms.md).
    history = client_for(admin).get(f"/api/v1/rooms/{room.pk}/messages").json()["results"]
    assert [m["body"] for m in history] == ["before"]
    stranger = UserFactory()
    refused = client_for(member).post(
        f"/api/v1/rooms/{room.pk}/members", {"user_id": stranger.pk}, format="json"
    )
    assert refused.status_code == 403
    # Leave: the leaver reads it no more; the others keep it.
    assert client_for(admin).post(f"/api/v1/rooms/{room.pk}/leave").status_code == 204
    assert client_for(admin).get(f"/api/v1/rooms/{room.pk}/").status_code == 404
    room.refresh_from_db()
    assert room.dm_key == dms.dm_key({owner.pk, member.pk, target.pk})
    members = client_for(member).get(f"/api/v1/rooms/{room.pk}/").json()["members"]
    assert [m["id"] for m in members] == sorted([owner.pk, member.pk, target.pk])


def test_a_two_person_dm_can_be_neither_left_nor_grown(world: World) -> None:
    room = _dm(world, "member", "target")
    client = client_for(world.users["member"])
    assert client.post(f"/api/v1/rooms/{room.pk}/leave").status_code == 409
    grown = client.post(
        f"/api/v1/rooms/{room.pk}/members", {"user_id": world.users["admin"].pk}, format="json"
    )
    assert grown.status_code == 409
    channel = client.post(f"/api/v1/rooms/{world.general.pk}/leave")
    assert channel.status_code == 409


def test_leaving_into_the_set_of_another_dm_keeps_both_rooms(world: World) -> None:
    pair = _dm(world, "member", "target")
    trio = _dm(world, "member", "target", "owner")
    dms.dm_leave(actor=world.users["owner"], room=trio)
    trio.refresh_from_db()
    assert trio.dm_key is None  # the pair's key stays with the pair
    again, created = dms.dm_open(actor=world.users["member"], user_ids=[world.target.pk])
    assert (again.pk, created) == (pair.pk, False)
    _post(world.users["member"], trio, "still readable", "a")


def test_a_group_dm_holds_at_most_ten(world: World) -> None:
    community = world.community
    users = [MembershipFactory(community=community).user for _ in range(9)]
    room, _ = dms.dm_open(actor=users[0], user_ids=[u.pk for u in users[1:]] + [world.target.pk])
    assert RoomMember.objects.filter(room=room).count() == 10
    with pytest.raises(Conflict):
        dms.dm_member_add(actor=users[0], room=room, user_id=world.users["admin"].pk)


def test_new_dms_are_rate_limited(world: World, settings: Any) -> None:
    settings.ACT_RATES = {**settings.ACT_RATES, "dm": "2/min"}
    member = world.users["member"]
    client = client_for(member)
    others = [MembershipFactory(community=world.community).user for _ in range(3)]
    codes = [
        client.post("/api/v1/dms/", {"user_ids": [u.pk]}, format="json").status_code for u in others
    ]
    assert codes == [201, 201, 429]
    # Finding an existing DM is not a new one.
    again = client.post("/api/v1/dms/", {"user_ids": [others[0].pk]}, format="json")
    assert again.status_code == 200


def test_not_a_member_of_the_dm_cannot_leave_or_add(world: World) -> None:
    room = _dm(world, "member", "target", "owner")
    with pytest.raises(NotFound):
        dms.dm_leave(actor=world.users["admin"], room=room)
    with pytest.raises(NotFound):
        dms.dm_member_add(actor=world.users["admin"], room=room, user_id=world.users["admin"].pk)


def test_dms_are_listed_with_the_rooms_after_the_channels(world: World) -> None:
    room = _dm(world, "member", "target")
    rooms = client_for(world.users["member"]).get("/api/v1/me/rooms").json()["results"]
    assert rooms[-1]["id"] == room.pk
    assert rooms[-1]["kind"] == "dm"
    assert {r["kind"] for r in rooms[:-1]} == {"channel"}
    assert all(r["members"] is None for r in rooms[:-1])


def test_a_user_sharing_a_second_community_only_may_be_messaged(db: Any) -> None:
    a, b = UserFactory(), UserFactory()
    other = CommunityFactory()
    Membership.objects.create(community=other, user=a)
    Membership.objects.create(community=other, user=b)
    room, created = dms.dm_open(actor=a, user_ids=[b.pk])
    assert created
    assert room.kind == "dm"


def test_only_superusers_manage_site_terms(world: World, client: Any) -> None:
    from chat.services import automod

    with pytest.raises(Forbidden):
        automod.blocked_term_add(
            actor=world.users["owner"], community=None, term="spam", action="block"
        )
    staff = User.objects.create_superuser("siteadmin", password="pw-long-enough-1")
    made = automod.blocked_term_add(actor=staff, community=None, term="spam", action="block")
    assert made.community is None
    # Through the admin: the moderator's form needs a community, the superuser's does not.
    moderator = world.users["moderator"]
    moderator.is_staff = True
    moderator.save()
    client.force_login(moderator)
    page = client.post(
        "/admin/chat/blockedterm/add/", {"community": "", "term": "scam", "action": "block"}
    )
    assert page.status_code in (200, 403)  # the form again with its error, or no desk access
    assert not BlockedTerm.objects.filter(term="scam").exists()
    client.force_login(staff)
    done = client.post(
        "/admin/chat/blockedterm/add/", {"community": "", "term": "scam", "action": "block"}
    )
    assert done.status_code == 302
    assert BlockedTerm.objects.get(term="scam").community is None


def test_user_search_finds_people_sharing_a_community(world: World) -> None:
    member = world.users["member"]
    stranger = UserFactory(username="zz_stranger")
    mate = MembershipFactory(community=world.community, user=UserFactory(username="ZZ_mate")).user
    gone = MembershipFactory(community=world.community, user=UserFactory(username="zz_gone")).user
    gone.is_active = False
    gone.save()
    client = client_for(member)
    found = client.get("/api/v1/users/", {"q": "zz"}).json()["results"]
    assert [u["id"] for u in found] == [mate.pk]
    assert stranger.pk not in [u["id"] for u in found]
    assert client.get("/api/v1/users/", {"q": member.username}).json()["results"] == []
    assert client.get("/api/v1/users/").status_code == 400
    assert world.client("anonymous").get("/api/v1/users/", {"q": "zz"}).status_code == 401
