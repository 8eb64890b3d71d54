"""Automod per community: block terms refuse a message, flag terms let it through and open a
report; whole words, any case; REST and socket alike; the lists change through services
(moderators and up, audited) and at the desk."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from chat.models import BlockedTerm, Message, Report
from chat.services import automod
from chat.services.limits import BlockedContent
from chat.services.limits import automod as check
from communities.models import AuditEntry
from communities.services.desk import desk_grant
from sphere.errors import Conflict, Forbidden, Invalid
from tests.chat.gateway_helpers import connect, send, until
from tests.conftest import World, build_world


@pytest.fixture
def terms(world: World) -> World:
    automod.blocked_term_add(
        actor=world.users["moderator"], community=world.community, term="Darn", action="block"
    )
    automod.blocked_term_add(
        actor=world.users["moderator"], community=world.community, term="heck", action="flag"
    )
    return world


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "blocked", "flagged"),
    [
        ("well darn it", True, []),
        ("DARN!", True, []),
        ("Darned thing", False, []),  # a longer word is not the term
        ("undarn", False, []),
        ("what the heck", False, ["heck"]),
        ("HECK, HECK", False, ["heck"]),
        ("hecking", False, []),
        ("heck and darn", True, []),  # a block term wins
        ("all clear", False, []),
    ],
)
def test_whole_words_in_any_case(
    terms: World, body: str, blocked: bool, flagged: list[str]
) -> None:
    if blocked:
        with pytest.raises(BlockedContent):
            check(community=terms.community, body=body)
    else:
        assert check(community=terms.community, body=body) == flagged


@pytest.mark.django_db
def test_over_rest_a_block_term_refuses_and_a_flag_term_reports(terms: World) -> None:
    client = terms.client("member")
    url = f"/api/v1/rooms/{terms.general.pk}/messages"
    refused = client.post(url, {"body": "oh DARN", "client_msg_id": "a"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "blocked_content")
    assert not Message.objects.exists()
    passed = client.post(url, {"body": "what the Heck", "client_msg_id": "b"}, format="json")
    assert passed.status_code == 201
    report = Report.objects.get(message_id=passed.json()["id"])
    assert (report.reporter, report.reason, report.status) == (None, "automod: heck", "open")


@pytest.mark.django_db(transaction=True)
async def test_over_the_socket_alike() -> None:
    world = await database_sync_to_async(build_world)("public")
    await database_sync_to_async(automod.blocked_term_add)(
        actor=world.users["owner"], community=world.community, term="darn", action="block"
    )
    await database_sync_to_async(automod.blocked_term_add)(
        actor=world.users["owner"], community=world.community, term="heck", action="flag"
    )
    comm = await connect(world.users["member"], sync={})
    room = world.general.pk
    frame = {"type": "message.send", "room": room, "client_msg_id": "x", "body": "darn", "ref": "1"}
    await send(comm, frame)
    error = await until(comm, "error")
    assert (error["code"], error["ref"]) == ("blocked_content", "1")
    await send(comm, {**frame, "client_msg_id": "y", "body": "HECK yes", "ref": "2"})
    ack = await until(comm, "ack")
    assert ack["ref"] == "2"
    assert await Report.objects.filter(message_id=ack["message_id"], reporter=None).aexists()
    await comm.disconnect()


@pytest.mark.django_db
def test_term_changes_are_audited_and_normalised(world: World) -> None:
    moderator = world.users["moderator"]
    made = automod.blocked_term_add(
        actor=moderator, community=world.community, term="  Bad   Words ", action="flag"
    )
    assert made.term == "bad words"
    automod.blocked_term_change(actor=moderator, blocked=made, term="worse words", action="block")
    automod.blocked_term_remove(actor=moderator, blocked=made)
    actions = list(AuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["automod.term_add", "automod.term_change", "automod.term_remove"]
    assert not BlockedTerm.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["", " ", "x" * 101, "a!", "-dash", "tab\there?"])
def test_bad_terms_are_invalid(world: World, term: str) -> None:
    with pytest.raises(Invalid):
        automod.blocked_term_add(
            actor=world.users["moderator"], community=world.community, term=term, action="block"
        )


@pytest.mark.django_db
def test_a_term_twice_is_a_conflict_and_members_cannot_change_terms(world: World) -> None:
    automod.blocked_term_add(
        actor=world.users["moderator"], community=world.community, term="dup", action="block"
    )
    with pytest.raises(Conflict):
        automod.blocked_term_add(
            actor=world.users["admin"], community=world.community, term="DUP", action="flag"
        )
    with pytest.raises(Forbidden):
        automod.blocked_term_add(
            actor=world.users["member"], community=world.community, term="mine", action="block"
        )


@pytest.mark.django_db
def test_terms_are_kept_at_the_desk(world: World, settings: Any) -> None:
    desk_grant(user=world.users["moderator"])
    client = Client()
    client.force_login(world.users["moderator"])
    url = "/admin/chat/blockedterm/"
    added = client.post(
        f"{url}add/", {"community": world.community.pk, "term": "Rude Word", "action": "block"}
    )
    assert added.status_code == 302
    term = BlockedTerm.objects.get()
    assert term.term == "rude word"
    refused = client.post(
        f"{url}add/", {"community": world.community.pk, "term": "no!", "action": "block"}
    )
    assert refused.status_code == 200  # the form again, with the error
    assert BlockedTerm.objects.count() == 1
    other = build_world("public")
    foreign = client.post(
        f"{url}add/", {"community": other.community.pk, "term": "x", "action": "block"}
    )
    assert foreign.status_code == 200  # not a community they moderate: not a choice
    client.post(url, {"action": "remove_terms", "_selected_action": [term.pk]})
    assert not BlockedTerm.objects.exists()
    assert list(AuditEntry.objects.values_list("action", flat=True).order_by("id")) == [
        "automod.term_add",
        "automod.term_remove",
    ]


@pytest.mark.django_db
def test_an_edit_that_brings_in_a_flag_term_opens_a_report(terms: World) -> None:
    from chat.services.messages import message_edit, message_post

    member = terms.users["member"]
    message, _ = message_post(actor=member, room=terms.general, body="hi", client_msg_id="e")
    assert not Report.objects.exists()
    message_edit(actor=member, message=message, body="what the heck")
    report = Report.objects.get(message=message)
    assert (report.reporter, report.reason) == (None, "automod: heck")
    message_edit(actor=member, message=message, body="heck heck")
    assert Report.objects.filter(message=message).count() == 1  # one open report, not two
    with pytest.raises(BlockedContent):
        message_edit(actor=member, message=message, body="darn")
