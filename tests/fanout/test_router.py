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
