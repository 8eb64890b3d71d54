"""The mode is decided once, by the transport factory; everything else asks the transport."""

from __future__ import annotations

from typing import Any

from fanout import transport
from fanout.embedded import EmbeddedTransport
from fanout.redis import RedisTransport


def test_the_settings_choose_the_transport_and_it_is_built_once(settings: Any) -> None:
    settings.SCALED = False
    first = transport.current()
    assert isinstance(first, EmbeddedTransport)
    assert transport.current() is first
    settings.SCALED = True
    scaled = transport.current()
    assert isinstance(scaled, RedisTransport)
    assert scaled.keeps_outbox
    assert not first.keeps_outbox
    settings.SCALED = False
    assert isinstance(transport.current(), EmbeddedTransport)


def test_the_embedded_transport_knows_no_one_online_without_connections(settings: Any) -> None:
    settings.SCALED = False
    assert transport.current().online([1, 2, 3]) == set()
    assert transport.current().partition_stats() is None
    assert transport.current().shared_redis() is None
