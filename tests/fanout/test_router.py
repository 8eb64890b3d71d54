"""The router's readers cache against the rooms' access versions."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import pytest

from fanout.hooks import hooks
from fanout.items import AccessItem, Batch, EventBatch, RoomItem
from fanout.router import Router

ROOM = 12


class Everywhere:
    """A registry where every user is on gateway ``g``, and a hand-off that keeps batches."""

    def __init__(self) -> None:
        self.sent: list[Batch] = []

    async def locate(self, user_ids: Collection[int]) -> dict[str, list[int]]:
        return {"g": sorted(user_ids)} if user_ids else {}

    async def send(self, batches: Sequence[tuple[str, Batch]]) -> None:
        self.sent.extend(batch for _, batch in batches)


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The database's side: the room's readers and access version, and how often they were
    read."""
    state: dict[str, Any] = {"readers": frozenset({1, 2}), "version": 0, "reads": 0}

    def readers(room_id: int) -> tuple[frozenset[int], int]:
        state["reads"] += 1
        return state["readers"], state["version"]

    monkeypatch.setattr(hooks.store, "readers", readers)
    from fanout import router as router_module

    def direct(fn: Any, thread_sensitive: bool = True) -> Any:
        async def call(*args: Any) -> Any:
            return fn(*args)

        return call

    monkeypatch.setattr(router_module, "database_sync_to_async", direct)
    return state


def recipients(hub: Everywhere) -> list[tuple[int, ...]]:
    return [b.user_ids for b in hub.sent if isinstance(b, EventBatch)]


async def test_a_room_that_never_changed_is_read_once(db: dict[str, Any]) -> None:
    hub = Everywhere()
    router = Router(hub, hub)
    for seq in (1, 2, 3):
        await router.handle(RoomItem(ROOM, seq, b"{}", access_version=0))
    assert db["reads"] == 1
    assert recipients(hub) == [(1, 2)] * 3


async def test_an_event_committed_after_a_change_reads_the_readers_again(
    db: dict[str, Any],
) -> None:
    hub = Everywhere()
    router = Router(hub, hub)
    await router.handle(RoomItem(ROOM, 1, b"{}", access_version=0))
    db["readers"], db["version"] = frozenset({1}), 1  # user 2 was kicked: its item is late
    await router.handle(RoomItem(ROOM, 2, b"{}", access_version=1))
    await router.handle(RoomItem(ROOM, 3, b"{}", access_version=1))
    assert db["reads"] == 2
    assert recipients(hub) == [(1, 2), (1,), (1,)]


async def test_an_event_of_unknown_version_always_reads_the_readers(db: dict[str, Any]) -> None:
    hub = Everywhere()
    router = Router(hub, hub)
    for seq in (1, 2):
        await router.handle(RoomItem(ROOM, seq, b"{}"))  # the outbox sweep's: version unknown
    assert db["reads"] == 2


async def test_an_access_item_drops_the_cache_and_typing_never_reads(
    db: dict[str, Any],
) -> None:
    hub = Everywhere()
    router = Router(hub, hub)
    await router.handle(RoomItem(ROOM, 1, b"{}", access_version=0))
    await router.handle(RoomItem(ROOM, 0, b"typing", exclude_user=2))
    assert db["reads"] == 1
    await router.handle(AccessItem(ROOM, (2,), (b"removed",), False, 1, 1))
    await router.handle(RoomItem(ROOM, 2, b"{}", access_version=1))
    assert db["reads"] == 2


# --- a whole read at once ----------------------------------------------------------------------


class Counting(Everywhere):
    """``Everywhere``, counting look-ups and hand-offs and keeping each gateway's batches."""

    def __init__(self, gateways: dict[int, list[str]] | None = None) -> None:
        super().__init__()
        self.gateways = gateways or {}
        self.locates: list[set[int]] = []
        self.sends = 0
        self.at: dict[str, list[Batch]] = {}

    async def locate(self, user_ids: Collection[int]) -> dict[str, list[int]]:
        self.locates.append(set(user_ids))
        where: dict[str, list[int]] = {}
        for user_id in user_ids:
            for gateway in self.gateways.get(user_id, ["g"]):
                where.setdefault(gateway, []).append(user_id)
        return where

    async def send(self, batches: Sequence[tuple[str, Batch]]) -> None:
        self.sends += 1
        for gateway, batch in batches:
            self.sent.append(batch)
            self.at.setdefault(gateway, []).append(batch)


def normalized(batches: list[Batch]) -> list[Any]:
    """Batches compared regardless of the order of users within one."""
    return [
        (type(b).__name__, getattr(b, "room_id", None), getattr(b, "seq", None), set(b.user_ids))
        for b in batches
    ]


async def test_a_read_is_one_look_up_and_one_hand_off(db: dict[str, Any]) -> None:
    from fanout.items import UsersItem

    hub = Counting({1: ["a"], 2: ["b"], 3: ["a", "b"]})
    db["readers"] = frozenset({1, 2, 3})
    router = Router(hub, hub)
    items: list[Any] = [
        RoomItem(ROOM, 1, b"1", access_version=0),
        RoomItem(ROOM + 4, 1, b"x", access_version=0),
        RoomItem(ROOM, 2, b"2", access_version=0),
        UsersItem((7,), b"u", 7),
        RoomItem(ROOM, 0, b"typing", exclude_user=3),
    ]
    assert await router.handle_many(items) is True
    assert hub.locates == [{1, 2, 3, 7}]
    assert hub.sends == 1
    assert normalized(hub.at["a"]) == [
        ("EventBatch", ROOM, 1, {1, 3}),
        ("EventBatch", ROOM + 4, 1, {1, 3}),
        ("EventBatch", ROOM, 2, {1, 3}),
        ("EventBatch", ROOM, 0, {1}),
    ]
    assert normalized(hub.at["b"]) == [
        ("EventBatch", ROOM, 1, {2, 3}),
        ("EventBatch", ROOM + 4, 1, {2, 3}),
        ("EventBatch", ROOM, 2, {2, 3}),
        ("EventBatch", ROOM, 0, {2}),
    ]
    assert normalized(hub.at["g"]) == [("UsersBatch", None, None, {7})]


async def test_an_access_item_takes_effect_exactly_between_the_events_of_its_read(
    db: dict[str, Any],
) -> None:
    """The removal was committed (the database shows it) before the read is routed: events
    before its item in the read reach the removed user from the cache, those after do not."""
    hub = Everywhere()
    router = Router(hub, hub)
    await router.handle(RoomItem(ROOM, 1, b"{}", access_version=0))  # the cache: {1, 2}
    db["readers"], db["version"] = frozenset({1}), 1
    done = await router.handle_many(
        [
            RoomItem(ROOM, 2, b"{}", access_version=0),
            AccessItem(ROOM, (2,), (b"removed",), False, 2, 1),
            RoomItem(ROOM, 3, b"{}", access_version=1),
        ]
    )
    assert done
    assert [(type(b).__name__, b.user_ids) for b in hub.sent] == [
        ("EventBatch", (1, 2)),
        ("EventBatch", (1, 2)),
        ("AccessBatch", (2,)),
        ("EventBatch", (1,)),
    ]
    assert db["reads"] == 2


async def test_nothing_is_handed_over_when_the_lease_is_not_known_valid(
    db: dict[str, Any],
) -> None:
    hub = Counting()
    router = Router(hub, hub)
    sent = await router.handle_many([RoomItem(ROOM, 1, b"{}")], may_send=lambda: False)
    assert sent is False
    assert (hub.sends, hub.sent) == (0, [])


async def test_a_read_at_once_routes_as_item_by_item_would(db: dict[str, Any]) -> None:
    """Random reads of events, typing frames and grants or removals (each raising the room's
    version, some events committed before a change arriving after it): the batches of
    ``handle_many`` are those of ``handle`` item by item, and the readers are read as often."""
    import random

    rng = random.Random(11)
    for _ in range(200):
        readers, version = frozenset({1, 2, 3}), 0
        items: list[Any] = []
        seq = 0
        for _ in range(rng.randint(1, 12)):
            roll = rng.random()
            if roll < 0.2:  # a change of readers: the database first, its item later
                user = rng.choice([1, 2, 3, 4])
                grant = user not in readers
                readers = readers | {user} if grant else readers - {user}
                version += 1
                items.append(AccessItem(ROOM, (user,), (b"f",), grant, seq, version))
            elif roll < 0.3:
                items.append(RoomItem(ROOM, 0, b"t", exclude_user=rng.choice([1, 2])))
            else:
                seq += 1
                committed_at = max(0, version - rng.choice([0, 0, 0, 1]))
                items.append(RoomItem(ROOM, seq, b"e", access_version=committed_at))
        outcomes = []
        for at_once in (False, True):
            # Every change of the read is committed before the read is routed.
            db.update(readers=readers, version=version, reads=0)
            hub = Everywhere()
            router = Router(hub, hub)
            if at_once:
                await router.handle_many(items)
            else:
                for step in items:
                    await router.handle(step)
            batches = [(type(b).__name__, sorted(b.user_ids)) for b in hub.sent]
            outcomes.append((batches, db["reads"]))
        assert outcomes[0] == outcomes[1], items
