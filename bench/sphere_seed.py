"""Benchmark data in a Sphere database: ``rooms`` communities of one room each, with ``members``
members and an owner who sends (accounts without a usable password), and single-use WebSocket
tickets issued up front. Prints JSON:
``{"rooms": [{"id", "sender": [tickets], "members": [[tickets], ...]}]}``.

Run with the environment of the Sphere under test (``DATABASE_URL``, ``REDIS_URL``):

    python -m bench.sphere_seed --rooms 1 --members 1000 --tickets 2 --tag s1
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, required=True)
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--tickets", type=int, default=1, help="tickets per user")
    parser.add_argument("--tag", required=True, help="makes usernames and slugs unique")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sphere.settings")
    import django

    django.setup()
    data = seed(rooms=args.rooms, members=args.members, tickets=args.tickets, tag=args.tag)
    json.dump(data, sys.stdout)


if __name__ == "__main__":
    main()
