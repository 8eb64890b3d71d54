"""Threads (docs/threads.md): replies in the room's seq sequence, root summaries and
``thread.updated``, follows, thread markers, ``/me/threads``, unread counts, search."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Message, RoomEvent, ThreadFollow
from chat.services.messages import message_delete, message_post
from communities.services import members
from sphere.errors import Invalid
from tests.chat.gateway_helpers import connect, send, until
from tests.conftest import World, build_world, client_for

_ids = iter(range(1, 10**9))


def post(user: Any, room: Any, body: str = "hi", **kw: Any) -> Message:
    message, _ = message_post(
        actor=user, room=room, body=body, client_msg_id=f"t{next(_ids)}", **kw
    )
    return message


@pytest.mark.django_db
class TestThreads:
    def test_a_reply_is_a_room_event_and_updates_its_root(self, world: World) -> None:
        member, target = world.users["member"], world.target
        root = post(member, world.general, "root")
        reply = post(target, world.general, "first reply", thread_root=root.pk)
        assert reply.thread_root_id == root.pk
        assert reply.seq == root.seq + 1
        events = list(
            RoomEvent.objects.filter(room=world.general).order_by("seq").values_list("type", "seq")
        )
        assert events == [
            ("message.new", root.seq),
            ("message.new", reply.seq),
            ("thread.updated", reply.seq + 1),
        ]
        updated = RoomEvent.objects.get(room=world.general, type="thread.updated").payload
        assert updated["message_id"] == root.pk
        assert updated["thread"]["reply_count"] == 1
        assert updated["thread"]["participants"] == [target.pk]
        root.refresh_from_db()
        assert root.event_seq == reply.seq + 1
        body = client_for(member).get(f"/api/v1/messages/{root.pk}/").json()
        assert body["thread"]["reply_count"] == 1
        assert body["thread_root"] is None
        second = post(member, world.general, "second", thread_root=root.pk)
        root.refresh_from_db()
        assert root.thread_reply_count == 2
        assert root.thread_participants == [target.pk, member.pk]
        assert client_for(target).get(f"/api/v1/messages/{second.pk}/").json()["thread_root"] == (
            root.pk
        )

    def test_bad_roots_are_refused(self, world: World) -> None:
        member = world.users["member"]
        root = post(member, world.general, "root")
        reply = post(member, world.general, "reply", thread_root=root.pk)
        other_room = world.private_room
        with pytest.raises(Invalid):
            post(member, world.general, "x", thread_root=reply.pk)  # a reply to a reply
        with pytest.raises(Invalid):
            post(world.users["moderator"], other_room, "x", thread_root=root.pk)  # another room
        with pytest.raises(Invalid):
            post(member, world.general, "x", thread_root=10**12)
        answer = client_for(member).post(
            f"/api/v1/rooms/{world.general.pk}/messages",
            {"body": "x", "client_msg_id": "bad-root", "thread_root": reply.pk},
            format="json",
        )
        assert answer.status_code == 400
        assert "thread_root" in answer.json()["fields"]

    def test_thread_endpoint_pages_replies_and_history_holds_top_level_only(
        self, world: World
    ) -> None:
        member = world.users["member"]
        root = post(member, world.general, "root")
        replies = [post(member, world.general, f"r{n}", thread_root=root.pk) for n in range(5)]
        after = post(member, world.general, "after")
        client = client_for(member)
        page = client.get(f"/api/v1/messages/{root.pk}/thread", {"limit": 3}).json()
        assert page["root"]["id"] == root.pk
        assert [m["body"] for m in page["results"]] == ["r0", "r1", "r2"]
        assert page["has_more"] is True
        rest = client.get(
            f"/api/v1/messages/{root.pk}/thread", {"after_seq": replies[2].seq}
        ).json()
        assert [m["body"] for m in rest["results"]] == ["r3", "r4"]
        assert rest["has_more"] is False
        history = client.get(f"/api/v1/rooms/{world.general.pk}/messages").json()["results"]
        assert [m["id"] for m in history] == [root.pk, after.pk]
        assert client.get(f"/api/v1/messages/{replies[0].pk}/thread").status_code == 404
        outsider = world.client("outsider")
        assert outsider.get(f"/api/v1/messages/{root.pk}/thread").status_code in (403, 404)

    def test_follows_are_automatic_and_explicit(self, world: World) -> None:
        author, replier, named, other = (
            world.users["member"],
            world.target,
            world.users["moderator"],
            world.users["admin"],
        )
        root = post(author, world.general, "root")
        post(replier, world.general, f"hey @{named.username}", thread_root=root.pk)
        following = set(
            ThreadFollow.objects.filter(root=root, following=True).values_list("user", flat=True)
        )
        assert following == {author.pk, replier.pk, named.pk}
        # Explicit: follow, unfollow; an unfollow survives a mention but not a reply.
        assert client_for(other).put(f"/api/v1/messages/{root.pk}/follow").json()["following"]
        assert client_for(named).delete(f"/api/v1/messages/{root.pk}/follow").status_code == 204
        post(replier, world.general, f"again @{named.username}", thread_root=root.pk)
        assert not ThreadFollow.objects.get(root=root, user=named).following
        post(named, world.general, "fine, I reply", thread_root=root.pk)
        assert ThreadFollow.objects.get(root=root, user=named).following

    def test_my_threads_unread_and_thread_markers(self, world: World) -> None:
        author, replier = world.users["member"], world.target
        root = post(author, world.general, "root")
        quiet = post(author, world.general, "quiet root")
        r1 = post(replier, world.general, "one", thread_root=root.pk)
        post(replier, world.general, "two", thread_root=root.pk)
        post(author, world.general, "mine", thread_root=root.pk)  # own replies are not unread
        client = client_for(author)
        listed = client.get("/api/v1/me/threads").json()
        assert [(t["root"]["id"], t["unread"]) for t in listed["results"]] == [(root.pk, 2)]
        assert listed["next"] is None
        moved = client.post(
            f"/api/v1/messages/{root.pk}/thread/read", {"seq": r1.seq}, format="json"
        ).json()
        assert moved["read_seq"] == r1.seq
        back = client.post(f"/api/v1/messages/{root.pk}/thread/read", {"seq": 1}, format="json")
        assert back.json()["read_seq"] == r1.seq  # never back
        listed = client.get("/api/v1/me/threads").json()["results"]
        assert listed[0]["unread"] == 1
        # A later reply elsewhere comes first.
        post(replier, world.general, "x", thread_root=quiet.pk)
        order = [t["root"]["id"] for t in client.get("/api/v1/me/threads").json()["results"]]
        assert order == [quiet.pk, root.pk]

    def test_room_unread_counts_top_level_only(self, world: World) -> None:
        author, reader = world.users["member"], world.target
        root = post(author, world.general, "root")
        for n in range(3):
            post(author, world.general, f"r{n}", thread_root=root.pk)
        room = client_for(reader).get(f"/api/v1/rooms/{world.general.pk}/").json()
        assert room["unread"] == 1

    def test_search_finds_replies_with_their_thread(self, world: World) -> None:
        member = world.users["member"]
        root = post(member, world.general, "root")
        reply = post(member, world.general, "findable zebra", thread_root=root.pk)
        found = client_for(member).get("/api/v1/search", {"q": "zebra"}).json()["results"]
        assert [(m["id"], m["thread_root"]) for m in found] == [(reply.pk, root.pk)]

    def test_a_deleted_root_keeps_its_thread_and_replies_are_moderated(self, world: World) -> None:
        member = world.users["member"]
        root = post(member, world.general, "root")
        reply = post(member, world.general, "bad reply", thread_root=root.pk)
        message_delete(actor=member, message=root)
        thread = client_for(world.target).get(f"/api/v1/messages/{root.pk}/thread").json()
        assert thread["root"]["deleted"] is True
        assert [m["body"] for m in thread["results"]] == ["bad reply"]
        message_delete(actor=world.users["moderator"], message=reply)
        thread = client_for(world.target).get(f"/api/v1/messages/{root.pk}/thread").json()
        assert thread["results"][0]["deleted"] is True

    def test_losing_the_room_hides_its_threads(self, world: World) -> None:
        author, replier = world.users["member"], world.target
        root = post(author, world.general, "root")
        post(replier, world.general, "r", thread_root=root.pk)
        members.community_leave(actor=replier, community=world.community)
        assert client_for(replier).get("/api/v1/me/threads").json()["results"] == []


@pytest.mark.django_db(transaction=True)
async def test_replies_and_thread_updates_reach_readers_live_in_order_and_replay() -> None:
    world = await database_sync_to_async(build_world)("public")
    member, target = world.users["member"], world.target
    room = world.general.pk
    a = await connect(member, sync={})
    b = await connect(target, sync={})
    await send(a, {"type": "message.send", "room": room, "client_msg_id": "root", "body": "r"})
    await until(a, "ack")
    root = (await until(b, "message.new"))["message"]
    await send(
        a,
        {
            "type": "message.send",
            "room": room,
            "client_msg_id": "reply",
            "body": "in thread",
            "thread_root": root["id"],
            "ref": "x",
        },
    )
    ack = await until(a, "ack")
    stream: list[dict[str, Any]] = []
    updated = await until(b, "thread.updated", stream)
    reply = next(f for f in stream if f["type"] == "message.new")
    assert reply["message"]["thread_root"] == root["id"]
    assert (reply["seq"], updated["seq"]) == (ack["seq"], ack["seq"] + 1)
    assert updated["message_id"] == root["id"]
    assert updated["thread"]["reply_count"] == 1
    await b.disconnect()
    # A reconnect replays both through sync.
    again = await connect(target)
    await send(again, {"type": "sync", "rooms": {str(room): root["seq"]}, "ref": "s"})
    replayed: list[dict[str, Any]] = []
    await until(again, "synced", replayed)
    assert [(f["type"], f["seq"]) for f in replayed if f.get("room") == room] == [
        ("message.new", ack["seq"]),
        ("thread.updated", ack["seq"] + 1),
    ]
    await a.disconnect()
    await again.disconnect()


@pytest.mark.django_db
def test_a_thread_marker_alone_does_not_stop_an_automatic_follow(world: World) -> None:
    author, reader = world.users["member"], world.target
    root = post(author, world.general, "root")
    post(author, world.general, "first", thread_root=root.pk)
    client = client_for(reader)
    read = client.post(f"/api/v1/messages/{root.pk}/thread/read", {"seq": 100}, format="json")
    assert read.json()["following"] is False
    post(author, world.general, f"@{reader.username} look", thread_root=root.pk)
    assert ThreadFollow.objects.get(root=root, user=reader).following is True
