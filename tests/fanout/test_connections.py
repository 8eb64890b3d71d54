"""A gateway's registry bookkeeping: a user stays registered while any local socket of theirs
is open, whatever order opening and closing sockets' Redis calls finish in; its Redis loops
end when they are cancelled; and what the tier hands a connection in one loop turn, over many
batches, leaves in one socket write."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from chat.gateway.socket_writer import DirectWriter, text_frame
from fanout.connections import LocalConnections
from fanout.delivery import Delivery
from fanout.items import EventBatch, UsersBatch
from fanout.redis.keys import Keys
from fanout.redis.link import RedisLink
from tests.chat.test_socket_writer import fake_writer


@dataclass(eq=False)
class Conn:
    user_id: int


def gateway_with(link: Any) -> LocalConnections:
    """A gateway's connections whose registry is ``link``."""
    gateway = LocalConnections(asyncio.get_running_loop(), lambda _local: link)
    return gateway


class SlowLink:
    """The registry as Redis holds it, with an unregister that takes its time."""

    def __init__(self) -> None:
        self.where: dict[int, int] = {}
        self.unregistering = asyncio.Event()
        self.finish_unregister = asyncio.Event()

    async def admit(self, user_id: int, here: int, limit: int) -> tuple[int, bool]:
        self.where[user_id] = 1  # registered (once, however many sockets)
        return 0, False

    async def count(self, user_id: int, here: int) -> None:
        pass

    async def unregister(self, user_id: int, token: str) -> int:
        self.unregistering.set()
        await self.finish_unregister.wait()
        self.where.pop(user_id, None)
        return 0


async def test_a_socket_opening_while_the_last_one_closes_stays_registered() -> None:
    link: Any = SlowLink()
    gateway = gateway_with(link)
    first = Conn(7)
    assert await gateway.attach(first) is True
    closing = asyncio.ensure_future(gateway.detach(first))
    await link.unregistering.wait()  # the unregister is on its way to Redis
    opening = asyncio.ensure_future(gateway.attach(Conn(7)))
    await asyncio.sleep(0)
    link.finish_unregister.set()
    await closing
    await opening
    assert gateway.connections_of(7)
    assert link.where.get(7) == 1  # registered again after the unregister landed


async def test_the_last_socket_closing_unregisters_and_a_second_close_does_nothing() -> None:
    link: Any = SlowLink()
    link.finish_unregister.set()
    gateway = gateway_with(link)
    a, b = Conn(8), Conn(8)
    assert await gateway.attach(a) is True
    assert await gateway.attach(b) is False  # the user was here already
    assert await gateway.detach(a) is False
    assert link.where == {8: 1}
    assert await gateway.detach(b) is True
    assert link.where == {}
    assert await gateway.detach(b) is False


class CancelSwallowingRedis:
    """A blocking read cancelled mid-way that answers with a connection error, as redis-py
    may when it drops the connection under a cancelled read. A read after that is a retry
    the loop should not have made: it is noted, and it ends the task for real."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.retried = False

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        if self.reading.is_set():
            self.retried = True
            raise asyncio.CancelledError
        self.reading.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None


async def test_the_inbox_loop_ends_when_cancelled_even_if_the_read_answers_with_an_error() -> None:
    link = RedisLink.__new__(RedisLink)  # no real Redis: only the loop is under test
    link.local = gateway_with(link)
    link.keys = Keys("test-cancel")
    link.last_id = "0-0"
    reader = CancelSwallowingRedis()
    link.reader = reader  # type: ignore[assignment]
    task = asyncio.ensure_future(link._inbox())
    await reader.reading.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=30)
    assert task.cancelled()
    assert not reader.retried


class WrittenConnection:
    """A connection as the gateway makes one: room cursors over a direct socket writer."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.writer: DirectWriter
        self.writer, self.protocol = fake_writer(limit=1 << 20)
        self.delivery = Delivery(self.write, lambda room, seq: b"resync", user_id=user_id)

    def write(self, frame: bytes) -> None:
        assert self.writer(text_frame(frame))

    def deliver_event(self, room_id: int, seq: int, frame: bytes) -> bool:
        return self.delivery.offer(room_id, seq, frame)

    def deliver_frame(self, frame: bytes) -> None:
        self.write(frame)

    @property
    def socket_writes(self) -> list[bytes]:
        return list(self.protocol.transport.socket.sent)


async def test_a_turns_batches_leave_in_one_write_per_connection_in_order() -> None:
    gateway = LocalConnections(asyncio.get_running_loop())
    alice, bob, carol = WrittenConnection(1), WrittenConnection(2), WrittenConnection(3)
    for connection in (alice, bob, carol):
        await gateway.attach(connection)
        for room in (10, 11):
            connection.delivery.start_live(room, 0)
    batches: list[Any] = [
        EventBatch(10, 1, b'{"room":10,"seq":1}', (1, 2, 3)),  # a burst in room 10
        EventBatch(10, 2, b'{"room":10,"seq":2}', (1, 2, 3)),
        EventBatch(11, 1, b'{"room":11,"seq":1}', (1, 2)),  # another room
        UsersBatch(b'{"type":"presence"}', (1, 3)),
        EventBatch(10, 3, b'{"room":10,"seq":3}', (1, 2, 3)),
    ]
    for batch in batches:
        gateway.apply(batch)
    assert [c.socket_writes for c in (alice, bob, carol)] == [[], [], []]  # not yet
    await asyncio.sleep(0)  # the turn ends

    def framed(*frames: bytes) -> list[bytes]:
        return [b"".join(text_frame(frame) for frame in frames)]

    assert alice.socket_writes == framed(
        b'{"room":10,"seq":1}',
        b'{"room":10,"seq":2}',
        b'{"room":11,"seq":1}',
        b'{"type":"presence"}',
        b'{"room":10,"seq":3}',
    )
    assert bob.socket_writes == framed(
        b'{"room":10,"seq":1}', b'{"room":10,"seq":2}', b'{"room":11,"seq":1}',
        b'{"room":10,"seq":3}',
    )  # fmt: skip
    assert carol.socket_writes == framed(
        b'{"room":10,"seq":1}', b'{"room":10,"seq":2}', b'{"type":"presence"}',
        b'{"room":10,"seq":3}',
    )  # fmt: skip
    gateway.apply(EventBatch(10, 4, b'{"room":10,"seq":4}', (1,)))
    await asyncio.sleep(0)
    assert alice.socket_writes[1:] == framed(b'{"room":10,"seq":4}')  # the next turn: another
    gateway.stop()
