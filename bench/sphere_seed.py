"""Benchmark data in a Sphere database: ``rooms`` communities of one room each, with ``members``
members and an owner who sends (accounts without a usable password), and single-use WebSocket
tickets issued up front. Prints JSON:
``{"rooms": [{"id", "sender": [tickets], "members": [[tickets], ...]}]}``.

With ``--dms``, ``rooms`` two-person DMs instead (docs/dms.md): two users per DM, every user in
one community (the default ``dm_policy`` lets people who share a community message each other),
each DM opened by its first user through ``dm_open``. That user is the DM's ``sender`` and a
member too (its connection receives its own messages); ``members`` lists the other user.

Run with the environment of the Sphere under test (``DATABASE_URL``, ``REDIS_URL``):

    python -m bench.sphere_seed --rooms 1 --members 1000 --tickets 2 --tag s1
    python -m bench.sphere_seed --rooms 1000 --dms --tickets 2 --tag s2
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def seed(*, rooms: int, members: int, tickets: int, tag: str) -> dict[str, object]:
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.db import transaction

    from communities.models import Community, Membership, Room
    from communities.roles import Role
    from communities.services.accounts import ws_tickets_issue_many

    out: list[dict[str, object]] = []
    with transaction.atomic():
        for r in range(rooms):
            users = User.objects.bulk_create(
                [
                    User(username=f"b{tag}r{r}m{n}", password=make_password(None))
                    for n in range(members + 1)
                ],
                batch_size=2000,
            )
            community = Community.objects.create(name=f"Bench {tag} {r}", slug=f"b-{tag}-{r}")
            Membership.objects.bulk_create(
                [
                    Membership(
                        community=community,
                        user=user,
                        role=Role.OWNER.value if n == 0 else Role.MEMBER.value,
                    )
                    for n, user in enumerate(users)
                ],
                batch_size=2000,
            )
            room = Room.objects.create(community=community, name="general")
            issued = ws_tickets_issue_many(
                user_ids=[u.pk for u in users], per_user=tickets, ttl_s=6 * 3600
            )
            out.append(
                {
                    "id": room.pk,
                    "sender": issued[users[0].pk],
                    "members": [issued[u.pk] for u in users[1:]],
                }
            )
    return {"rooms": out}


def seed_dms(*, dms: int, tickets: int, tag: str) -> dict[str, object]:
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.db import transaction

    from communities.models import Community, Membership
    from communities.roles import Role
    from communities.services.accounts import ws_tickets_issue_many
    from communities.services.dms import dm_open

    out: list[dict[str, object]] = []
    with transaction.atomic():
        users = User.objects.bulk_create(
            [
                User(username=f"b{tag}d{d}u{n}", password=make_password(None))
                for d in range(dms)
                for n in range(2)
            ],
            batch_size=2000,
        )
        community = Community.objects.create(name=f"Bench {tag} DMs", slug=f"b-{tag}-dms")
        Membership.objects.bulk_create(
            [
                Membership(
                    community=community,
                    user=user,
                    role=Role.OWNER.value if n == 0 else Role.MEMBER.value,
                )
                for n, user in enumerate(users)
            ],
            batch_size=2000,
        )
        issued = ws_tickets_issue_many(
            user_ids=[u.pk for u in users], per_user=tickets, ttl_s=6 * 3600
        )
        for d in range(dms):
            first, second = users[2 * d], users[2 * d + 1]
            room, created = dm_open(actor=first, user_ids=[second.pk])
            if not created:
                raise RuntimeError(f"DM {d} existed already")
            out.append({"id": room.pk, "sender": issued[first.pk], "members": [issued[second.pk]]})
    return {"rooms": out, "sender_is_member": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, required=True)
    parser.add_argument("--members", type=int, default=0)
    parser.add_argument("--dms", action="store_true", help="two-person DMs, not communities")
    parser.add_argument("--tickets", type=int, default=1, help="tickets per user")
    parser.add_argument("--tag", required=True, help="makes usernames and slugs unique")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sphere.settings")
    import django

    django.setup()
    if args.dms:
        data = seed_dms(dms=args.rooms, tickets=args.tickets, tag=args.tag)
    else:
        data = seed(rooms=args.rooms, members=args.members, tickets=args.tickets, tag=args.tag)
    json.dump(data, sys.stdout)


if __name__ == "__main__":
    main()
