"""REST behaviour of the message endpoints (docs/api.md), beyond the permission matrix."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat.models import BlockedTerm, Message, Reaction, ReadMarker, Report
from communities.models import AuditEntry, Membership, Room
from tests.chat.conftest import FanoutCapture, new_client_msg_id, post
from tests.conftest import World, build_world, client_for
from tests.factories import MembershipFactory, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

MESSAGE_KEYS = {  # the Message of docs/api.md, with ``event_seq``
    "id",
    "room",
    "seq",
    "event_seq",
    "author",
    "body",
    "thread_root",
    "thread",
    "reply_to",
    "mentions",
    "reactions",
    "created_at",
    "edited_at",
    "deleted",
}


def messages_url(room: Any) -> str:
    return f"/api/v1/rooms/{room.pk}/messages"


def send(world: World, standing: str, body: Any = "hello", room: Any = None, **extra: Any) -> Any:
    payload = {"body": body, "client_msg_id": extra.pop("client_msg_id", new_client_msg_id())}
    payload.update(extra)
    return world.client(standing).post(messages_url(room or world.general), payload, format="json")


def mute(world: World, standing: str) -> None:
    Membership.objects.filter(community=world.community, user=world.users[standing]).update(
        muted_until=timezone.now() + timedelta(minutes=10)
    )


def slow_mode(room: Any, seconds: int) -> None:
    # Not room.save(): the instance's head_seq is stale once messages exist.
    Room.objects.filter(pk=room.pk).update(slow_mode_s=seconds)


# --- Posting -----------------------------------------------------------------------------------


def test_post_answers_201_and_the_message(world: World, capture_fanout: FanoutCapture) -> None:
    with capture_fanout.committing():
        response = send(world, "member", "  hi there  ")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    member = world.users["member"]
    assert body | {"id": None, "created_at": None} == {
        "id": None,
        "room": world.general.pk,
        "seq": 1,
        "event_seq": 1,
        "author": {"id": member.pk, "username": member.username},
        "body": "hi there",
        "thread_root": None,
        "thread": None,
        "reply_to": None,
        "mentions": [],
        "reactions": [],
        "created_at": None,
        "edited_at": None,
        "deleted": False,
    }
    assert body["created_at"].endswith("Z")
    assert capture_fanout.types() == ["message.new"]
    assert capture_fanout.room_events[0].frame["message"] == body


@pytest.mark.parametrize(
    ("standing", "room", "status"),
    [
        ("member", "general", 201),
        ("member", "private_room", 404),
        ("moderator", "private_room", 201),
        ("admin", "private_room", 201),
        ("outsider", "general", 404),
        ("banned", "general", 404),
    ],
)
def test_post_needs_a_reader(world: World, standing: str, room: str, status: int) -> None:
    response = send(world, standing, room=getattr(world, room))
    assert response.status_code == status
    if status == 404:
        assert response.json()["code"] == "not_found"
        assert not Message.objects.exists()


def test_post_to_a_missing_room_is_404_like_an_unreadable_one(world: World) -> None:
    missing = world.client("member").post(
        "/api/v1/rooms/999999/messages", {"body": "x", "client_msg_id": "a"}, format="json"
    )
    unreadable = send(world, "member", room=world.private_room)
    assert missing.status_code == unreadable.status_code == 404
    assert missing.json() == unreadable.json()


def test_muted_member_gets_403_muted(world: World) -> None:
    mute(world, "member")
    response = send(world, "member")
    assert (response.status_code, response.json()["code"]) == (403, "muted")


def test_slow_mode_429_with_retry_after_and_moderators_exempt(world: World) -> None:
    slow_mode(world.general, 30)
    assert send(world, "member").status_code == 201
    response = send(world, "member")
    assert (response.status_code, response.json()["code"]) == (429, "slow_mode")
    assert 1 <= int(response["Retry-After"]) <= 30
    for standing in ["moderator", "admin", "owner"]:
        assert send(world, standing).status_code == 201
        assert send(world, standing).status_code == 201


def test_rate_limit_429_with_retry_after(world: World, settings: Any) -> None:
    settings.MESSAGE_RATE = "3/min"
    for _ in range(3):
        assert send(world, "member").status_code == 201
    response = send(world, "member")
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Message.objects.count() == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("", 400),
        ("   \n\t ", 400),
        ("x" * 4001, 400),
        ("x" * 4000, 201),
        ("  " + "x" * 4000 + "\n ", 201),
        ("x", 201),
    ],
)
def test_body_is_1_to_4000_characters_after_trimming(world: World, body: str, status: int) -> None:
    response = send(world, "member", body)
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "invalid"
        assert "body" in response.json()["fields"]
    else:
        assert response.json()["body"] == body.strip()


@pytest.mark.parametrize(
    "payload",
    [
        {"body": "x"},
        {"client_msg_id": "a"},
        {"body": "x", "client_msg_id": ""},
        {"body": "x", "client_msg_id": "a" * 65},
        {"body": ["x"], "client_msg_id": "a"},
        {"body": "x", "client_msg_id": "a", "extra": 1},
        {"body": "x", "client_msg_id": "a", "reply_to": "nope"},
        {"body": "x", "client_msg_id": "a", "reply_to": 2**63},
        {"body": "x\x00y", "client_msg_id": "a"},
        [],
    ],
)
def test_malformed_posts_are_400_with_fields(world: World, payload: Any) -> None:
    response = world.client("member").post(messages_url(world.general), payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["fields"]


def test_blocked_term_whole_word_any_case(world: World) -> None:
    BlockedTerm.objects.create(community=world.community, term="darn", action="block")
    response = send(world, "member", "well DARN it")
    assert (response.status_code, response.json()["code"]) == (400, "blocked_content")
    assert send(world, "member", "darned socks, undarn").status_code == 201
    assert send(world, "member", "darn.").status_code == 400
    assert Message.objects.count() == 1


def test_flag_term_posts_and_opens_a_report(world: World) -> None:
    BlockedTerm.objects.create(community=world.community, term="heck", action="flag")
    response = send(world, "member", "what the Heck")
    assert response.status_code == 201
    report = Report.objects.get()
    assert report.message_id == response.json()["id"]
    assert report.reporter is None
    assert report.status == "open"
    assert "heck" in report.reason


def test_same_client_msg_id_answers_200_and_the_same_message(
    world: World, capture_fanout: FanoutCapture, settings: Any
) -> None:
    with capture_fanout.committing():
        first = send(world, "member", "one", client_msg_id="abc")
    assert first.status_code == 201
    capture_fanout.clear()
    # Whatever the body, mute, slow mode or rate limit says now.
    slow_mode(world.general, 600)
    settings.MESSAGE_RATE = "1/h"
    mute(world, "member")
    with capture_fanout.committing():
        again = send(world, "member", "", client_msg_id="abc")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert capture_fanout.room_events == []
    assert Message.objects.count() == 1
    # Another author's same id is another message.
    other = send(world, "admin", "two", client_msg_id="abc")
    assert other.status_code == 201
    assert other.json()["seq"] == 2


def test_seqs_run_without_gaps_and_each_event_carries_its_seq(
    world: World, capture_fanout: FanoutCapture, no_message_rate: None
) -> None:
    with capture_fanout.committing():
        seqs = [send(world, "member", f"m{i}").json()["seq"] for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [(e.type, e.seq) for e in capture_fanout.room_events] == [
        ("message.new", seq) for seq in seqs
    ]
    assert [e.frame["message"]["seq"] for e in capture_fanout.room_events] == seqs


def test_reply_to_must_be_in_the_same_room(world: World) -> None:
    other_room = RoomFactory(community=world.community, name="other")
    elsewhere = post(world.users["member"], other_room)
    response = send(world, "member", reply_to=elsewhere.pk)
    assert response.status_code == 400
    assert "reply_to" in response.json()["fields"]
    here = post(world.users["member"], world.general)
    response = send(world, "member", reply_to=here.pk)
    assert (response.status_code, response.json()["reply_to"]) == (201, here.pk)
    missing = send(world, "member", reply_to=10**12)
    assert missing.status_code == 400


def test_mentions_are_only_of_readers(world: World) -> None:
    member, outsider = world.users["member"], world.users["outsider"]
    body = f"hi @{member.username.upper()} and @{outsider.username}, mail a@{member.username}"
    response = send(world, "admin", body)
    assert response.json()["mentions"] == [member.pk]
    # In a private room only its readers count.
    response = send(
        world,
        "admin",
        f"@{member.username} @{world.users['moderator'].username}",
        room=world.private_room,
    )
    assert response.json()["mentions"] == [world.users["moderator"].pk]


# --- History -----------------------------------------------------------------------------------


def history(world: World, standing: str = "member", **query: Any) -> Any:
    response = world.client(standing).get(messages_url(world.general), query)
    assert response.status_code == 200, response.content
    body = response.json()
    return [m["seq"] for m in body["results"]], body["has_more"]


def test_history_paging(world: World, no_message_rate: None) -> None:
    for i in range(7):
        post(world.users["member"], world.general, f"m{i}")
    assert history(world) == ([1, 2, 3, 4, 5, 6, 7], False)
    assert history(world, limit=3) == ([5, 6, 7], True)
    assert history(world, limit=7) == ([1, 2, 3, 4, 5, 6, 7], False)
    assert history(world, limit=3, before_seq=5) == ([2, 3, 4], True)
    assert history(world, limit=3, before_seq=4) == ([1, 2, 3], False)
    assert history(world, limit=3, before_seq=1) == ([], False)
    assert history(world, limit=3, after_seq=0) == ([1, 2, 3], True)
    assert history(world, limit=3, after_seq=3) == ([4, 5, 6], True)
    assert history(world, limit=3, after_seq=4) == ([5, 6, 7], False)
    assert history(world, limit=3, after_seq=7) == ([], False)
    # Empty values count as absent; limit is clamped to 200.
    assert history(world, after_seq="", before_seq="", limit="") == ([1, 2, 3, 4, 5, 6, 7], False)
    assert history(world, limit=10**6) == ([1, 2, 3, 4, 5, 6, 7], False)


def test_history_limit_defaults_to_50_and_clamps_to_200(world: World) -> None:
    author = world.users["member"]
    Message.objects.bulk_create(
        Message(room=world.general, seq=seq, author=author, client_msg_id=str(seq), body="x")
        for seq in range(1, 252)
    )
    seqs, more = history(world)
    assert (seqs, more) == (list(range(202, 252)), True)
    seqs, more = history(world, limit=500)
    assert (seqs, more) == (list(range(52, 252)), True)
    seqs, more = history(world, limit=500, after_seq=50)
    assert (seqs, more) == (list(range(51, 251)), True)


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ({"limit": "abc"}, {"limit"}),
        ({"limit": 0}, {"limit"}),
        ({"limit": -1}, {"limit"}),
        ({"after_seq": -1}, {"after_seq"}),
        ({"before_seq": "1.5"}, {"before_seq"}),
        ({"after_seq": 2**63}, {"after_seq"}),
        ({"after_seq": 1, "before_seq": 5}, {"after_seq", "before_seq"}),
    ],
)
def test_history_refuses_bad_query_values(world: World, query: Any, fields: set[str]) -> None:
    response = world.client("member").get(messages_url(world.general), query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert set(response.json()["fields"]) == fields


def test_history_of_an_unreadable_room_is_404(world: World) -> None:
    post(world.users["moderator"], world.private_room)
    assert world.client("member").get(messages_url(world.private_room)).status_code == 404
    assert world.client("outsider").get(messages_url(world.general)).status_code == 404
    assert world.client("moderator").get(messages_url(world.private_room)).status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/v1/rooms/{room}/messages", "/api/v1/search?q=hello", "/api/v1/me/rooms"]
)
def test_list_query_count_does_not_grow(world: World, path: str, no_message_rate: None) -> None:
    client = world.client("moderator")
    url = path.format(room=world.general.pk)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    def grow(n: int) -> None:
        for i in range(n):
            room = RoomFactory(community=world.community, private=i % 2 == 0)
            message = post(world.users["admin"], world.general, f"hello {i}")
            reply = post(
                world.users["member"], world.general, f"hello again {i}", reply_to=message.pk
            )
            post(world.users["admin"], room, f"hello there {i}")
            Reaction.objects.create(message=message, user=world.users["member"], emoji="👍")
            Reaction.objects.create(message=reply, user=world.users["admin"], emoji="🎉")

    grow(1)
    few = count()
    grow(5)
    assert count() == few
    assert few <= 8


# --- Edit and delete ---------------------------------------------------------------------------


def message_url(message: Any) -> str:
    return f"/api/v1/messages/{message.pk}/"


def test_edit_by_the_author_only(world: World, capture_fanout: FanoutCapture) -> None:
    message = post(world.users["member"], world.general, "first")
    with capture_fanout.committing():
        response = world.client("member").patch(
            message_url(message),
            {"body": " second @" + world.users["admin"].username},
            format="json",
        )
    assert response.status_code == 200
    body = response.json()
    assert body["body"] == "second @" + world.users["admin"].username
    assert body["mentions"] == [world.users["admin"].pk]
    assert body["edited_at"] is not None
    assert body["seq"] == message.seq
    assert capture_fanout.types() == ["message.edited"]
    assert capture_fanout.room_events[0].frame["message"] == body
    for standing in ["owner", "admin", "moderator"]:
        response = world.client(standing).patch(message_url(message), {"body": "x"}, format="json")
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    response = world.client("outsider").patch(message_url(message), {"body": "x"}, format="json")
    assert response.status_code == 404


def test_edit_refuses_bad_bodies(world: World) -> None:
    message = post(world.users["member"], world.general, "first")
    client = world.client("member")
    for payload in [{"body": ""}, {"body": "x" * 4001}, {}, {"body": "x", "other": 1}]:
        response = client.patch(message_url(message), payload, format="json")
        assert response.status_code == 400, payload
    BlockedTerm.objects.create(community=world.community, term="darn")
    response = client.patch(message_url(message), {"body": "darn"}, format="json")
    assert response.json()["code"] == "blocked_content"
    assert Message.objects.get(pk=message.pk).body == "first"


def test_edit_after_delete_is_409(world: World) -> None:
    message = post(world.users["member"], world.general)
    client = world.client("member")
    assert client.delete(message_url(message)).status_code == 204
    response = client.patch(message_url(message), {"body": "back"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "conflict")


def test_delete_by_the_author(world: World, capture_fanout: FanoutCapture) -> None:
    message = post(world.users["member"], world.general, "oops @" + world.users["admin"].username)
    assert message.mentions == [world.users["admin"].pk]
    with capture_fanout.committing():
        assert world.client("member").delete(message_url(message)).status_code == 204
    assert capture_fanout.types() == ["message.deleted"]
    assert capture_fanout.room_events[0].frame | {"seq": None} == {
        "type": "message.deleted",
        "room": world.general.pk,
        "seq": None,
        "message_id": message.pk,
    }
    assert not AuditEntry.objects.filter(action="message.delete").exists()
    # Deleted messages keep their id and seq in history, with an empty body.
    results = world.client("admin").get(messages_url(world.general)).json()["results"]
    assert [(m["id"], m["seq"], m["deleted"], m["body"], m["mentions"]) for m in results] == [
        (message.pk, message.seq, True, "", [])
    ]
    # Deleting again changes nothing.
    with capture_fanout.committing():
        assert world.client("member").delete(message_url(message)).status_code == 204
    assert capture_fanout.types() == ["message.deleted"]


def test_delete_by_a_moderator_outranking_the_author_is_audited(world: World) -> None:
    message = post(world.users["member"], world.general, "spam")
    assert world.client("moderator").delete(message_url(message)).status_code == 204
    entry = AuditEntry.objects.get(action="message.delete")
    assert entry.actor == world.users["moderator"]
    assert entry.target == f"user:{world.users['member'].pk}"
    assert entry.detail == {"message": message.pk, "room": world.general.pk}
    assert Message.objects.get(pk=message.pk).deleted


def test_delete_needs_rank_over_the_author(world: World) -> None:
    by_admin = post(world.users["admin"], world.general)
    response = world.client("moderator").delete(message_url(by_admin))
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    by_member = post(world.users["member"], world.general)
    assert client_for(world.target).delete(message_url(by_member)).status_code == 403
    assert world.client("owner").delete(message_url(by_admin)).status_code == 204
    assert not Message.objects.get(pk=by_member.pk).deleted


def test_message_endpoints_are_404_for_unreadable_messages(world: World) -> None:
    secret = post(world.users["moderator"], world.private_room)
    client = world.client("member")
    for response in [
        client.patch(message_url(secret), {"body": "x"}, format="json"),
        client.delete(message_url(secret)),
        client.put(message_url(secret) + "reactions/x/"),
        client.delete(message_url(secret) + "reactions/x/"),
        client.post(message_url(secret)[:-1] + "/report", {"reason": "r"}, format="json"),
        client.delete("/api/v1/messages/999999/"),
    ]:
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


# --- Reactions ---------------------------------------------------------------------------------


def reaction_url(message: Any, emoji: str) -> str:
    return f"/api/v1/messages/{message.pk}/reactions/{quote(emoji)}/"


def test_reactions_add_twice_is_one_and_remove(world: World, capture_fanout: FanoutCapture) -> None:
    message = post(world.users["admin"], world.general)
    member = world.users["member"]
    with capture_fanout.committing():
        first = world.client("member").put(reaction_url(message, "👍"))
        second = world.client("member").put(reaction_url(message, "👍"))
    assert first.status_code == second.status_code == 200
    assert set(first.json()) == MESSAGE_KEYS
    assert second.json()["reactions"] == [{"emoji": "👍", "count": 1, "me": True}]
    assert Reaction.objects.count() == 1
    assert capture_fanout.types() == ["reaction.added"]
    assert capture_fanout.room_events[0].frame | {"seq": None} == {
        "type": "reaction.added",
        "room": world.general.pk,
        "seq": None,
        "message_id": message.pk,
        "emoji": "👍",
        "user": {"id": member.pk, "username": member.username},
    }
    # ``me`` is relative to the caller.
    answer = world.client("owner").put(reaction_url(message, "🎉")).json()
    assert answer["reactions"] == [
        {"emoji": "👍", "count": 1, "me": False},
        {"emoji": "🎉", "count": 1, "me": True},
    ]
    history = world.client("member").get(messages_url(world.general)).json()["results"]
    assert history[0]["reactions"] == [
        {"emoji": "👍", "count": 1, "me": True},
        {"emoji": "🎉", "count": 1, "me": False},
    ]
    capture_fanout.clear()
    with capture_fanout.committing():
        assert world.client("member").delete(reaction_url(message, "👍")).status_code == 204
    assert capture_fanout.types() == ["reaction.removed"]
    assert world.client("member").delete(reaction_url(message, "👍")).status_code == 404
    assert list(Reaction.objects.values_list("emoji", flat=True)) == ["🎉"]


def test_reaction_emoji_and_bad_emoji(world: World) -> None:
    message = post(world.users["admin"], world.general)
    client = world.client("member")
    assert client.put(reaction_url(message, "👍🏽")).status_code == 200
    for bad in [":thumbs_up:", "a b", "x" * 65, "\t"]:
        response = client.put(reaction_url(message, bad))
        assert (response.status_code, response.json()["code"]) == (400, "invalid"), bad


def test_reaction_on_a_deleted_message_is_409(world: World) -> None:
    message = post(world.users["member"], world.general)
    world.client("member").delete(message_url(message))
    response = world.client("admin").put(reaction_url(message, "👍"))
    assert (response.status_code, response.json()["code"]) == (409, "conflict")


# --- Reports -----------------------------------------------------------------------------------


def test_report_201_and_a_second_is_409(world: World) -> None:
    message = post(world.target, world.general, "rude")
    client = world.client("member")
    url = f"/api/v1/messages/{message.pk}/report"
    response = client.post(url, {"reason": "  rude  "}, format="json")
    assert response.status_code == 201
    body = response.json()
    member = world.users["member"]
    assert body | {"id": None, "created_at": None, "message": None} == {
        "id": None,
        "message": None,
        "reporter": {"id": member.pk, "username": member.username},
        "reason": "rude",
        "status": "open",
        "resolution": "",
        "created_at": None,
    }
    assert body["message"]["id"] == message.pk
    assert set(body["message"]) == MESSAGE_KEYS
    again = client.post(url, {"reason": "still rude"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert world.client("admin").post(url, {"reason": "agreed"}, format="json").status_code == 201
    for payload in [{}, {"reason": ""}, {"reason": "x" * 1001}, {"reason": "x", "y": 1}]:
        assert world.client("owner").post(url, payload, format="json").status_code == 400


# --- Read markers and unread counts ------------------------------------------------------------


def read(world: World, standing: str, seq: Any, room: Any = None) -> Any:
    room = room or world.general
    return world.client(standing).post(f"/api/v1/rooms/{room.pk}/read", {"seq": seq}, format="json")


def my_unread(world: World, standing: str) -> dict[str, int]:
    response = world.client(standing).get("/api/v1/me/rooms")
    assert response.status_code == 200
    return {room["name"]: room["unread"] for room in response.json()["results"]}


def test_read_marker_moves_forward_only(
    world: World, capture_fanout: FanoutCapture, no_message_rate: None
) -> None:
    for i in range(4):
        post(world.users["admin"], world.general, f"m{i}")
    with capture_fanout.committing():
        response = read(world, "member", 3)
    assert response.status_code == 200
    assert response.json() == {"room": world.general.pk, "seq": 3}
    member = world.users["member"]
    assert capture_fanout.user_frames == [
        ((member.pk,), {"type": "read", "room": world.general.pk, "seq": 3})
    ]
    assert read(world, "member", 1).json() == {"room": world.general.pk, "seq": 3}
    assert read(world, "member", 100).json() == {"room": world.general.pk, "seq": 4}  # the head
    assert ReadMarker.objects.get(user=member, room=world.general).seq == 4
    for bad in [-1, "x", None, 2**63]:
        assert read(world, "member", bad).status_code == 400
    assert read(world, "member", 1, room=world.private_room).status_code == 404


def test_unread_counts_in_my_rooms(world: World, no_message_rate: None) -> None:
    admin, member = world.users["admin"], world.users["member"]
    for i in range(3):
        post(admin, world.general, f"m{i}")
    post(member, world.general, "mine")  # seq 4: the caller's own messages never count
    post(admin, world.private_room, "secret")
    assert my_unread(world, "member") == {"general": 3}
    assert my_unread(world, "moderator") == {"general": 4, "secret": 1}
    read(world, "member", 2)
    assert my_unread(world, "member") == {"general": 1}
    last = post(admin, world.general, "five")
    assert my_unread(world, "member") == {"general": 2}
    world.client("admin").delete(message_url(last))  # deleted messages do not count
    assert my_unread(world, "member") == {"general": 1}
    read(world, "member", 100)
    assert my_unread(world, "member") == {"general": 0}
    assert my_unread(world, "outsider") == {}


# --- Search ------------------------------------------------------------------------------------


def search(world: World, standing: str, **query: Any) -> list[str]:
    response = world.client(standing).get("/api/v1/search", query)
    assert response.status_code == 200, response.content
    return [message["body"] for message in response.json()["results"]]


def test_search_returns_only_readable_messages(world: World, no_message_rate: None) -> None:
    post(world.users["admin"], world.general, "the quick brown fox")
    post(world.users["moderator"], world.private_room, "a secret fox plan")
    post(world.users["admin"], world.general, "nothing here")
    deleted = post(world.users["admin"], world.general, "a deleted fox")
    world.client("admin").delete(message_url(deleted))
    elsewhere = build_world("private")
    post(elsewhere.users["member"], elsewhere.general, "a foreign fox")

    assert search(world, "member", q="fox") == ["the quick brown fox"]
    assert search(world, "moderator", q="FOX") == ["a secret fox plan", "the quick brown fox"]
    assert search(world, "admin", q="fox", room=world.general.pk) == ["the quick brown fox"]
    assert search(world, "admin", q="fox plan") == ["a secret fox plan"]
    assert search(world, "outsider", q="fox") == []
    assert search(world, "banned", q="fox") == []
    assert search(world, "member", q="fox", room=world.private_room.pk) == []
    assert search(world, "member", q="fox", community=elsewhere.community.slug) == []
    assert search(world, "member", q="fox", community=world.community.slug) == [
        "the quick brown fox"
    ]
    assert search(world, "member", q="fox", community="", room="") == ["the quick brown fox"]
    assert search(world, "member", q="giraffe") == []


def test_search_answers_a_paginated_list(world: World, no_message_rate: None) -> None:
    for i in range(5):
        post(world.users["admin"], world.general, f"fox number {i}")
    client = world.client("member")
    first = client.get("/api/v1/search", {"q": "fox", "limit": 3}).json()
    assert [m["body"] for m in first["results"]] == [f"fox number {i}" for i in (4, 3, 2)]
    assert set(first["results"][0]) == MESSAGE_KEYS
    second = client.get(first["next"]).json()
    assert [m["body"] for m in second["results"]] == ["fox number 1", "fox number 0"]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "fox", "room": "abc"}, "room"),
        ({"q": "fox", "room": 2**63}, "room"),
        ({"q": "fox", "community": "not a slug"}, "community"),
    ],
)
def test_search_refuses_bad_queries(world: World, query: Any, field: str) -> None:
    response = world.client("member").get("/api/v1/search", query)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_search_of_odd_text_never_fails(world: World) -> None:
    post(world.users["admin"], world.general, "quotes ' and \" and : & | ! ( )")
    for q in ["'", '"', ":*", "&", "!", "( )", "a & b | !c", "-", "or", "\\", "%", "_", "😀"]:
        response = world.client("member").get("/api/v1/search", {"q": q})
        assert response.status_code == 200, q


# --- Presence ----------------------------------------------------------------------------------


def test_presence_lists_the_online_readers(world: World, monkeypatch: Any) -> None:
    online = [world.users[s].pk for s in ("member", "moderator", "outsider")]
    monkeypatch.setattr("chat.presence.online_among", lambda ids: set(ids) & set(online))
    response = world.client("admin").get(f"/api/v1/rooms/{world.general.pk}/presence")
    assert response.status_code == 200
    assert response.json() == {"online": sorted(online[:2])}
    secret = world.client("admin").get(f"/api/v1/rooms/{world.private_room.pk}/presence")
    assert secret.json() == {"online": [world.users["moderator"].pk]}


def test_presence_is_404_for_non_readers(world: World) -> None:
    for standing, room in [("member", world.private_room), ("outsider", world.general)]:
        response = world.client(standing).get(f"/api/v1/rooms/{room.pk}/presence")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert world.client("member").get(f"/api/v1/rooms/{world.general.pk}/presence").json() == {
        "online": []
    }


# --- My rooms ----------------------------------------------------------------------------------


def test_my_rooms_lists_readable_rooms_across_communities(world: World) -> None:
    user = world.users["member"]
    other = MembershipFactory(user=user).community
    RoomFactory(community=other, name="lobby")
    RoomFactory(community=other, name="hidden", private=True)
    response = client_for(user).get("/api/v1/me/rooms")
    names = [(room["community"], room["name"]) for room in response.json()["results"]]
    assert sorted(names) == sorted([(world.community.slug, "general"), (other.slug, "lobby")])
    assert response.json()["next"] is None
    assert client_for(UserFactory()).get("/api/v1/me/rooms").json() == {
        "results": [],
        "next": None,
    }


# --- Open-ended input --------------------------------------------------------------------------

HYPOTHESIS = hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@HYPOTHESIS
@given(body=st.text(max_size=60))
def test_any_body_is_posted_trimmed_or_refused(
    world: World, no_message_rate: None, body: str
) -> None:
    response = send(world, "admin", body)
    expected = 201 if body.strip() and "\x00" not in body else 400
    assert response.status_code == expected, response.content
    if expected == 201:
        assert response.json()["body"] == body.strip()


@HYPOTHESIS
@given(q=st.text(min_size=1, max_size=200))
def test_any_search_text_answers_200_or_400(world: World, q: str) -> None:
    response = world.client("member").get("/api/v1/search", {"q": q})
    expected = 200 if q.strip() and "\x00" not in q else 400
    assert response.status_code == expected, response.content


@HYPOTHESIS
@given(emoji=st.text(min_size=1, max_size=70).filter(lambda e: "/" not in e))
def test_any_emoji_answers_200_or_400(world: World, emoji: str) -> None:
    message = Message.objects.filter(room=world.general).first() or post(
        world.users["admin"], world.general
    )
    response = world.client("member").put(
        f"/api/v1/messages/{message.pk}/reactions/{quote(emoji)}/"
    )
    assert response.status_code in {200, 400}, response.content
