"""Per-connection delivery: in order, once, gaps filled from the store or told (room.resync)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from fanout import delivery as delivery_module
from fanout.delivery import Delivery
from fanout.hooks import StoredEvent, hooks

ROOM = 7


def frame(seq: int) -> bytes:
    return f"e{seq}".encode()


class Store:
    """The database's side: the events that exist, and a gate to hold a read in flight."""

    def __init__(self, upto: int) -> None:
        self.seqs = set(range(1, upto + 1))
        self.gate: asyncio.Event | None = None
        self.readable = True
        self.readers: list[int] = []

    def between(
        self, room_id: int, after: int, upto: int, user_id: int
    ) -> list[StoredEvent] | None:
        self.readers.append(user_id)
        if not self.readable:
            return None
        return [StoredEvent(room_id, s, frame(s)) for s in sorted(self.seqs) if after < s <= upto]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    store = Store(upto=0)
    monkeypatch.setattr(hooks.store, "events_between", store.between)

    # The store is in memory: call it directly instead of through a database thread.
    def direct(fn: Callable[..., Any], thread_sensitive: bool = True) -> Callable[..., Any]:
        async def call(*args: Any) -> Any:
            if store.gate is not None:
                await store.gate.wait()
            return fn(*args)

        return call

    monkeypatch.setattr(delivery_module, "database_sync_to_async", direct)
    return store


USER = 42


def make(
    drain: Callable[[], Any] | None = None, revoked: Callable[[int], None] | None = None
) -> tuple[Delivery, list[bytes]]:
    written: list[bytes] = []
    delivery = Delivery(
        written.append,
        lambda room, seq: f"resync {room} {seq}".encode(),
        drain=drain,
        user_id=USER,
        revoked=revoked,
    )
    return delivery, written


async def settle(delivery: Delivery) -> None:
    while delivery.tasks:
        await asyncio.gather(*list(delivery.tasks))


async def test_in_order_and_duplicates_dropped(store: Store) -> None:
    delivery, written = make()
    delivery.start_live(ROOM, 0)
    for seq in [1, 2, 2, 1, 3]:
        delivery.offer(ROOM, seq, frame(seq))
    assert written == [frame(1), frame(2), frame(3)]


async def test_a_gap_is_filled_from_the_store_before_what_follows(store: Store) -> None:
    store.seqs = {1, 2, 3, 4, 5}
    delivery, written = make()
    delivery.start_live(ROOM, 0)
    delivery.offer(ROOM, 1, frame(1))
    delivery.offer(ROOM, 4, frame(4))  # 2 and 3 were missed
    delivery.offer(ROOM, 5, frame(5))
    await settle(delivery)
    assert written == [frame(s) for s in [1, 2, 3, 4, 5]]


async def test_an_unfillable_gap_pauses_the_room_with_resync(store: Store) -> None:
    store.seqs = {1, 4}
    delivery, written = make()
    delivery.start_live(ROOM, 0)
    delivery.offer(ROOM, 1, frame(1))
    delivery.offer(ROOM, 4, frame(4))
    await settle(delivery)
    assert written == [frame(1), b"resync 7 2"]
    delivery.offer(ROOM, 5, frame(5))  # paused: nothing more until the client syncs
    assert written[-1] == b"resync 7 2"
    store.seqs = {1, 2, 3, 4, 5}
    assert await delivery.replay(ROOM, 1) == 5
    assert written[2:] == [frame(s) for s in [2, 3, 4, 5]]


async def test_live_events_during_a_replay_wait_and_merge_in_order(store: Store) -> None:
    store.seqs = {1, 2, 3}
    store.gate = asyncio.Event()
    delivery, written = make()
    replay = asyncio.ensure_future(delivery.replay(ROOM, 0))
    await asyncio.sleep(0)
    delivery.offer(ROOM, 3, frame(3))  # live, while the replay's read is in flight
    delivery.offer(ROOM, 4, frame(4))
    store.seqs.add(4)
    store.gate.set()
    assert await replay == 4
    assert written == [frame(s) for s in [1, 2, 3, 4]]


async def test_a_stopped_room_gets_nothing_more(store: Store) -> None:
    store.seqs = {1, 2, 3}
    delivery, written = make()
    delivery.start_live(ROOM, 0)
    delivery.offer(ROOM, 1, frame(1))
    delivery.offer(ROOM, 3, frame(3))  # a gap fill starts
    delivery.stop(ROOM)  # revoked while it runs
    await settle(delivery)
    delivery.offer(ROOM, 4, frame(4))
    assert written == [frame(1)]


async def test_a_room_revoked_during_its_replay_gets_nothing_more(store: Store) -> None:
    store.seqs = {1, 2, 3}
    store.gate = asyncio.Event()
    delivery, written = make()
    replay = asyncio.ensure_future(delivery.replay(ROOM, 0))
    await asyncio.sleep(0)
    delivery.stop(ROOM)
    store.gate.set()
    await replay
    assert written == []


async def test_events_of_rooms_not_started_are_dropped(store: Store) -> None:
    delivery, written = make()
    delivery.offer(ROOM, 1, frame(1))
    assert written == []


async def test_a_hole_left_after_a_fill_is_filled_not_resynced(store: Store) -> None:
    store.seqs = {1, 2, 3, 4, 5, 6, 7, 8, 9}
    store.gate = asyncio.Event()
    delivery, written = make()
    delivery.start_live(ROOM, 5)
    delivery.offer(ROOM, 7, frame(7))  # 6 is late: a fill starts
    await asyncio.sleep(0)
    delivery.offer(ROOM, 9, frame(9))  # 8 is late too, while the first fill runs
    store.gate.set()
    await settle(delivery)
    assert written == [frame(s) for s in [6, 7, 8, 9]]


async def test_every_read_names_the_connection_s_user(store: Store) -> None:
    store.seqs = {1, 2}
    delivery, _ = make()
    await delivery.replay(ROOM, 0)
    assert set(store.readers) == {USER}


async def test_a_fill_that_finds_the_room_unreadable_revokes_it(store: Store) -> None:
    """A revocation whose room.removed never came: the database read refuses, the room is
    revoked on the connection and nothing of it is written."""
    store.seqs = {1, 2, 3}
    store.readable = False
    revoked: list[int] = []
    delivery, written = make(revoked=revoked.append)
    delivery.start_live(ROOM, 0)
    delivery.offer(ROOM, 1, frame(1))
    delivery.offer(ROOM, 3, frame(3))  # a gap: the fill asks the store
    await settle(delivery)
    assert (written, revoked) == ([frame(1)], [ROOM])
    delivery.offer(ROOM, 4, frame(4))
    assert written == [frame(1)]


async def test_a_replay_of_an_unreadable_room_writes_nothing_and_revokes(store: Store) -> None:
    store.seqs = {1, 2, 3}
    store.readable = False
    revoked: list[int] = []
    delivery, written = make(revoked=revoked.append)
    assert await delivery.replay(ROOM, 0) == 0
    assert (written, revoked, ROOM in delivery.rooms) == ([], [ROOM], False)


async def test_a_second_sync_never_goes_back(store: Store) -> None:
    """Each event at most once per connection: a sync from 0 of a room already live at 4
    resumes after 4."""
    store.seqs = {1, 2, 3, 4, 5}
    delivery, written = make()
    delivery.start_live(ROOM, 1)
    for seq in (2, 3, 4):
        delivery.offer(ROOM, seq, frame(seq))
    assert await delivery.replay(ROOM, 0) == 5
    assert written == [frame(s) for s in [2, 3, 4, 5]]


async def test_a_revocation_while_a_replay_waits_for_the_client_stops_it_at_once(
    store: Store,
) -> None:
    store.seqs = set(range(1, 51))
    delivery: Delivery
    paced = asyncio.Event()
    calls = 0

    async def drain() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # a slow client: the replay waits for it here
            paced.set()
            await asyncio.sleep(0.01)

    delivery, written = make(drain=drain)
    replay = asyncio.ensure_future(delivery.replay(ROOM, 0))
    await paced.wait()
    delivery.stop(ROOM)  # room.removed while the replay waits
    await replay
    assert written == [frame(s) for s in [1, 2, 3]]


async def test_live_events_held_past_the_bound_are_fetched_from_the_store(
    store: Store,
) -> None:
    """A replay held back by a slow client keeps at most HELD_MAX live events; the rest come
    from the store afterwards, once each and in order."""
    bound = delivery_module.HELD_MAX
    total = bound * 3
    store.seqs = set(range(1, 11))
    store.gate = asyncio.Event()
    delivery, written = make()
    replay = asyncio.ensure_future(delivery.replay(ROOM, 0))
    await asyncio.sleep(0)
    for seq in range(11, total + 1):  # live, while the replay's first read is in flight
        store.seqs.add(seq)
        delivery.offer(ROOM, seq, frame(seq))
        assert len(delivery.rooms[ROOM].held) <= bound
    store.gate.set()
    await replay
    await settle(delivery)
    assert written == [frame(s) for s in range(1, total + 1)]
