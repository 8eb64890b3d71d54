"""The mode is decided once, by the transport factory; everything else asks the transport."""

from __future__ import annotations

from typing import Any

from fanout import transport
from fanout.embedded import EmbeddedTransport
from fanout.items import Item, RoomItem
from fanout.redis import RedisTransport


def test_the_settings_choose_the_transport_and_it_is_built_once(settings: Any) -> None:
    settings.SCALED = False
    first = transport.current()
    assert isinstance(first, EmbeddedTransport)
    assert transport.current() is first
    settings.SCALED = True
    scaled = transport.current()
    assert isinstance(scaled, RedisTransport)
    settings.SCALED = False
    assert isinstance(transport.current(), EmbeddedTransport)


def test_the_embedded_transport_knows_no_one_online_without_connections(settings: Any) -> None:
    settings.SCALED = False
    assert transport.current().online([1, 2, 3]) == set()
    assert transport.current().partition_stats() is None
    assert transport.current().shared_redis() is None


def test_submit_many_defaults_to_one_submit_per_item_and_says_whether_all_were_taken() -> None:
    class Picky(transport.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.got: list[Item] = []

        def submit(self, item: Item) -> bool:
            self.got.append(item)
            return isinstance(item, RoomItem) and item.seq != 2

    picky = Picky()
    items = [RoomItem(1, seq, b"{}") for seq in (1, 2, 3)]
    assert picky.submit_many(items) is False
    assert picky.got == items  # a refusal does not stop the rest
    assert picky.submit_many(items[:1]) is True
