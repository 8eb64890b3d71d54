"""A gateway's registry bookkeeping: a user stays registered while any local socket of theirs
is open, whatever order opening and closing sockets' Redis calls finish in; and its Redis loops
end when they are cancelled."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fanout.connections import LocalConnections
from fanout.redis.keys import Keys
from fanout.redis.link import RedisLink


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

    async def register(self, user_id: int) -> int:
        self.where[user_id] = self.where.get(user_id, 0) + 1
        return 0

    async def unregister(self, user_id: int) -> int:
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
