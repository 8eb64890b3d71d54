"""Direct messages: rooms with no community, read by their members only (docs/dms.md).

A DM is found by its exact member set (``Room.dm_key``, unique), so two racing creates of the
same set give one room. Who may be messaged is decided by ``dm_refusal``, which the blocking
model plugs into through ``dm_blocked`` (``DM_BLOCK_CHECKS``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from communities import events
from communities.models import Membership, Profile, Room, RoomMember
from sphere.errors import Conflict, Forbidden, Invalid, NotFound
from sphere.rates import check_act_rate

MIN_MEMBERS, MAX_MEMBERS = 2, 10

# Each answers True when ``recipient`` has blocked ``sender`` (the people issue's blocking
# model appends its check here); any True refuses the DM as every other rule does.
DM_BLOCK_CHECKS: list[Callable[[int, int], bool]] = []

_REFUSED = "You cannot message this user."


def dm_key(user_ids: set[int]) -> str:
    return ",".join(str(user_id) for user_id in sorted(user_ids))


def dm_blocked(*, sender_id: int, recipient_id: int) -> bool:
    return any(check(sender_id, recipient_id) for check in DM_BLOCK_CHECKS)


def dm_refusal(*, sender: User, recipient_ids: set[int]) -> bool:
    """True when ``sender`` may not message one of ``recipient_ids``: a missing or disabled
    account, a block, or the recipient's ``dm_policy`` (``none``; ``communities``, the
    default, when the two share no community). The caller answers one Forbidden whatever
    the reason, so that a refusal never tells a block from a policy."""
    users = get_user_model().objects.filter(pk__in=recipient_ids, is_active=True)
    if users.count() != len(recipient_ids):
        return True
    policies = dict(
        Profile.objects.filter(user_id__in=recipient_ids).values_list("user_id", "dm_policy")
    )
    shared = set(
        Membership.objects.filter(
            user_id__in=recipient_ids,
            community_id__in=Membership.objects.filter(user_id=sender.pk).values("community_id"),
        ).values_list("user_id", flat=True)
    )
    for recipient in recipient_ids:
        policy = policies.get(recipient, Profile.DmPolicy.COMMUNITIES)
        if policy == Profile.DmPolicy.NONE:
            return True
        if policy == Profile.DmPolicy.COMMUNITIES and recipient not in shared:
            return True
        if dm_blocked(sender_id=sender.pk, recipient_id=recipient):
            return True
    return False


def clean_user_ids(*, actor: User, user_ids: object) -> set[int]:
    """The other members asked for: 1 to 9 distinct ids, the caller's own ignored."""
    if not isinstance(user_ids, list) or not all(
        isinstance(u, int) and not isinstance(u, bool) for u in user_ids
    ):
        raise Invalid("user_ids is a list of user ids.", fields={"user_ids": ["A list of ids."]})
    others = {u for u in user_ids if u != actor.pk}
    if not MIN_MEMBERS - 1 <= len(others) <= MAX_MEMBERS - 1:
        raise Invalid(
            f"A DM has {MIN_MEMBERS} to {MAX_MEMBERS} members.",
            fields={"user_ids": [f"1 to {MAX_MEMBERS - 1} other users."]},
        )
    return others


def dm_open(*, actor: User, user_ids: object) -> tuple[Room, bool]:
    """The DM of the caller and ``user_ids``: ``(room, created)``. An existing DM of exactly
    this member set is returned as it is (even where a rule would refuse a new one now: its
    members already talk). Raises Invalid (the ids), Forbidden (one reason for every refusal),
    RateLimited (``SPHERE_RATE_DMS``, new DMs only). Members get ``room.added`` on commit."""
    others = clean_user_ids(actor=actor, user_ids=user_ids)
    key = dm_key(others | {actor.pk})
    existing = Room.objects.filter(dm_key=key).first()
    if existing is not None:
        # Its members already talk, whatever a policy says now; but a block holds.
        if any(dm_blocked(sender_id=actor.pk, recipient_id=other) for other in others):
            raise Forbidden(_REFUSED)
        return existing, False
    if dm_refusal(sender=actor, recipient_ids=others):
        raise Forbidden(_REFUSED)
    check_act_rate("dm", user_id=actor.pk)
    try:
        with transaction.atomic():
            room = Room.objects.create(
                kind=Room.Kind.DM, community=None, dm_key=key, name="", private=True
            )
            RoomMember.objects.bulk_create(
                [RoomMember(room=room, user_id=user_id) for user_id in sorted(others | {actor.pk})]
            )
            events.grant_room_to_readers(room=room)
    except IntegrityError:
        # A racing create of the same set committed first: its room is the answer.
        room = Room.objects.get(dm_key=key)
        return room, False
    return room, True


def _lock_dm(*, actor: User, room_id: int) -> Room:
    """The DM locked, if ``actor`` is a member; NotFound otherwise (as for a missing room)."""
    room = Room.objects.select_for_update().filter(pk=room_id, community__isnull=True).first()
    if room is None or not RoomMember.objects.filter(room=room, user_id=actor.pk).exists():
        raise NotFound("No such room.")
    return room


def dm_leave(*, actor: User, room: Room) -> None:
    """A member leaves a group DM (three or more members): their connections get
    ``room.removed`` (``left``), the others ``room.updated`` with the members left. Raises
    NotFound (not a member), Conflict (a two-person DM, or a channel: leave its community)."""
    if room.community_id is not None:
        raise Conflict("Only a group DM can be left this way; leave the community instead.")
    with transaction.atomic():
        locked = _lock_dm(actor=actor, room_id=room.pk)
        members = set(RoomMember.objects.filter(room=locked).values_list("user_id", flat=True))
        if len(members) <= MIN_MEMBERS:
            raise Conflict("A two-person DM cannot be left.")
        finish = events.track_room(room=locked)
        RoomMember.objects.filter(room=locked, user_id=actor.pk).delete()
        _rekey(locked, members - {actor.pk})
        finish("left")
        events.room_updated(room=locked)


def dm_member_add(*, actor: User, room: Room, user_id: object) -> tuple[Room, bool]:
    """A member adds someone to a group DM (up to ten members): ``(room, added)``. The
    newcomer reads the whole history, as members of a private room do (docs/dms.md). Raises
    NotFound (not a member), Conflict (a two-person DM: open a new DM with everyone instead;
    full; the resulting set already has a DM), Invalid, Forbidden (the newcomer may not be
    messaged by the adder), RateLimited. Adding a member again changes nothing (``added``
    False)."""
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        raise Invalid("user_id is a user id.", fields={"user_id": ["A user id."]})
    try:
        with transaction.atomic():
            locked = _lock_dm(actor=actor, room_id=room.pk)
            members = set(RoomMember.objects.filter(room=locked).values_list("user_id", flat=True))
            if user_id in members:
                return locked, False
            check_act_rate("dm", user_id=actor.pk)
            if len(members) <= MIN_MEMBERS:
                raise Conflict("A two-person DM stays two: open a group DM with everyone.")
            if len(members) >= MAX_MEMBERS:
                raise Conflict(f"A DM has at most {MAX_MEMBERS} members.")
            if dm_refusal(sender=actor, recipient_ids={user_id}):
                raise Forbidden(_REFUSED)
            finish = events.track_room(room=locked)
            RoomMember.objects.create(room=locked, user_id=user_id)
            locked.dm_key = dm_key(members | {user_id})
            locked.save(update_fields=["dm_key"])
            finish("removed")
            events.room_updated(room=locked)
    except IntegrityError as exc:
        raise Conflict("A DM of these members exists already.") from exc
    return locked, True


def _rekey(room: Room, members: set[int]) -> None:
    """The key of the members left, unless another DM holds that set already: then this one
    keeps no key (it is found by its id alone, and a new DM of that set finds the other)."""
    room.dm_key = dm_key(members)
    try:
        with transaction.atomic():  # a savepoint: a racing create of the set may hold the key
            room.save(update_fields=["dm_key"])
    except IntegrityError:
        room.dm_key = None
        room.save(update_fields=["dm_key"])


def dm_policy_of(*, user: User) -> str:
    policy = Profile.objects.filter(user=user).values_list("dm_policy", flat=True).first()
    return policy or Profile.DmPolicy.COMMUNITIES.value


def dm_policy_set(*, actor: User, policy: str) -> None:
    """Who may start a DM with ``actor`` from now on; existing DMs stay open."""
    if policy not in Profile.DmPolicy.values:
        raise Invalid("Unknown DM policy.", fields={"dm_policy": ["anyone, communities or none."]})
    Profile.objects.update_or_create(user=actor, defaults={"dm_policy": policy})
