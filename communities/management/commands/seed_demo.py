"""Seed a demo community with a few users, rooms and a short conversation, so that the first
screen is not empty. Safe to run again: it adds what is missing and changes nothing that exists.
Messages and reactions go through the services, so their seqs and room events are those of any
other message (each message has a fixed ``client_msg_id``: posting it again is a no-op)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from chat.models import Message, Reaction
from chat.services.messages import message_post
from chat.services.reactions import reaction_add
from communities.models import Community, Membership, Room
from communities.services import communities as community_services
from communities.services import dms, members, rooms
from communities.services.desk import desk_grant
from sphere.errors import ApplicationError

PASSWORD = "sphere-demo-2026"  # noqa: S105 (the demo users, printed by make run)
USERS = [
    ("alice", "owner"),
    ("bob", "admin"),
    ("carol", "moderator"),
    ("dave", "member"),
    ("erin", "member"),
]
SLUG = "sphere-lounge"
# (key, room, author, body, the key of the message it replies to)
CONVERSATION = [
    ("welcome", "general", "alice",
     "Welcome to Sphere Lounge! Say hello here; #random is for everything else.", None),
    ("bob-hi", "general", "bob",
     "Hi all, Bob here. I look after rooms and invites: ask me for a private room.", None),
    ("dave-hi", "general", "dave",
     "Hello! Dave, mostly lurking. Can I get a nudge when someone mentions me?", None),
    ("carol-tip", "general", "carol",
     "@dave yes: mentions are highlighted, and the unread count keeps them for later.",
     "dave-hi"),
    ("erin-hi", "general", "erin",
     "Erin here, just joined from an invite link. Quiet and friendly so far.", None),
    ("dave-thanks", "general", "dave", "Thanks @carol, that works nicely.", "carol-tip"),
    ("coffee", "random", "bob", "Coffee or tea while you work? Asking for a poll.", None),
    ("tea", "random", "erin", "Tea, always. Coffee is for deadlines.", "coffee"),
]  # fmt: skip
# A thread under Bob's poll: (key, root key, author, body)
THREAD = [
    ("poll-alice", "coffee", "alice", "Coffee before noon, tea after. Both count."),
    ("poll-dave", "coffee", "dave", "Neither: hot chocolate. @erin you are outvoted anyway."),
]
# Direct messages: (the users, (author, body) in order)
DMS = [
    (("alice", "dave"), [("alice", "Hi Dave, welcome aboard. Ping me here any time."),
                         ("dave", "Thanks Alice! Will do.")]),
    (("bob", "carol", "erin"), [("bob", "Carol, Erin: shall we set up a #books room?"),
                                ("erin", "Yes please, I have a reading list ready.")]),
]  # fmt: skip
# (message key, who reacts, emoji)
REACTIONS = [("welcome", "dave", "👋"), ("welcome", "erin", "👋"), ("carol-tip", "dave", "👍")]


class Command(BaseCommand):
    help = "Create the demo community 'sphere-lounge' and its users (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--quiet", action="store_true", help="Print nothing")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        users = {}
        for username, _ in USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User.objects.create_user(username=username, password=PASSWORD)
            users[username] = user
        users["alice"].is_staff = users["alice"].is_superuser = True
        users["alice"].save(update_fields=["is_staff", "is_superuser"])
        desk_grant(user=users["carol"])  # carol moderates at the desk too

        owner = users["alice"]
        community = Community.objects.filter(slug=SLUG).first()
        if community is None:
            community = community_services.community_create(
                actor=owner,
                name="Sphere Lounge",
                slug=SLUG,
                description="A demo community: say hello in #general.",
            )
        for username, role in USERS[1:]:
            user = users[username]
            if not Membership.objects.filter(community=community, user=user).exists():
                members.community_join(actor=user, community=community)
                if role != "member":
                    members.member_set_role(
                        actor=owner, community=community, user_id=user.pk, role=role
                    )
        for name, topic, private in [
            ("random", "Anything goes", False),
            ("moderators", "Moderation team only", True),
        ]:
            room = Room.objects.filter(community=community, name=name).first()
            if room is None:
                room = rooms.room_create(
                    actor=owner, community=community, name=name, topic=topic, private=private
                )
            if private:
                rooms.room_member_add(actor=owner, room=room, user_id=users["carol"].pk)
        self._converse(community, users)

        if not options["quiet"]:
            self.stdout.write(f"Demo community '{SLUG}' is ready. Users (password {PASSWORD}):")
            for username, role in USERS:
                self.stdout.write(f"  {username:<6} {role}")
            self.stdout.write(
                "alice is also a Django superuser; carol works the moderators' desk at the admin."
            )

    def _converse(self, community: Community, users: dict[str, Any]) -> None:
        """The demo's conversation. A message the demo's users have since made impossible
        (an author banned or muted at the desk, say) is left out, with what depends on it."""
        posted: dict[str, Message] = {}
        for key, room_name, author, body, reply_key in CONVERSATION:
            room = Room.objects.get(community=community, name=room_name)
            if reply_key is not None and reply_key not in posted:
                continue
            try:
                with transaction.atomic():
                    posted[key], _ = message_post(
                        actor=users[author],
                        room=room,
                        body=body,
                        client_msg_id=f"demo-{key}",
                        reply_to=posted[reply_key].pk if reply_key else None,
                    )
            except ApplicationError:
                continue
        for key, root_key, author, body in THREAD:
            root = posted.get(root_key)
            if root is None:
                continue
            try:
                with transaction.atomic():
                    posted[key], _ = message_post(
                        actor=users[author],
                        room=root.room,
                        body=body,
                        client_msg_id=f"demo-{key}",
                        thread_root=root.pk,
                    )
            except ApplicationError:
                continue
        for names, lines in DMS:
            try:
                with transaction.atomic():
                    first, *others = (users[name] for name in names)
                    dm, _ = dms.dm_open(actor=first, user_ids=[user.pk for user in others])
                    for n, (author, body) in enumerate(lines):
                        message_post(
                            actor=users[author],
                            room=dm,
                            body=body,
                            client_msg_id=f"demo-dm-{n}",
                        )
            except ApplicationError:
                continue
        for key, who, emoji in REACTIONS:
            message = posted.get(key)
            if message is None or message.deleted:
                continue
            if Reaction.objects.filter(message=message, user=users[who], emoji=emoji).exists():
                continue
            try:
                with transaction.atomic():
                    reaction_add(actor=users[who], message=message, emoji=emoji)
            except ApplicationError:
                continue
