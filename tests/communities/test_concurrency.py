"""Row locks hold under real concurrency (PostgreSQL)."""

from __future__ import annotations

import pytest

from communities.models import Invite, Membership
from communities.services import invites, moderation
from communities.services.accounts import ws_ticket_issue, ws_ticket_redeem
from sphere.errors import ApplicationError
from tests.conftest import build_world, in_threads
from tests.factories import UserFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_concurrent_accepts_never_exceed_max_uses() -> None:
    world = build_world("private")
    invite = invites.invite_create(
        actor=world.users["admin"], community=world.community, max_uses=3
    )
    users = [UserFactory() for _ in range(10)]
    results = in_threads(
        [lambda u=u: invites.invite_accept(actor=u, code=invite.code) for u in users]
    )
    admitted = [r for r in results if isinstance(r, Membership)]
    assert len(admitted) == 3
    assert all(getattr(r, "code", None) == "gone" for r in results if r not in admitted)
    assert Invite.objects.get(pk=invite.pk).uses == 3
    assert Membership.objects.filter(community=world.community, user__in=users).count() == 3


def test_a_ticket_redeemed_concurrently_admits_exactly_one() -> None:
    user = UserFactory()
    ticket, _ = ws_ticket_issue(user=user)
    results = in_threads([lambda: ws_ticket_redeem(ticket=ticket) for _ in range(8)])
    assert [r for r in results if r is not None] == [user]


def test_concurrent_bans_of_one_user_record_one_ban() -> None:
    world = build_world("public")
    moderators = [world.users["owner"], world.users["admin"], world.users["moderator"]]
    results = in_threads(
        [
            lambda m=m: moderation.ban_create(
                actor=m, community=world.community, user_id=world.target.pk
            )
            for m in moderators
        ]
    )
    conflicts = [r for r in results if isinstance(r, ApplicationError)]
    assert len(conflicts) == 2
    assert {c.code for c in conflicts} == {"conflict"}
