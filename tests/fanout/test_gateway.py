"""The gateway's registry bookkeeping: a user stays registered while any local socket of theirs
is open, whatever order opening and closing sockets' Redis calls finish in."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fanout.gateway import Gateway


@dataclass(eq=False)
class Conn:
    user_id: int


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
    gateway = Gateway(asyncio.get_running_loop())
    link: Any = SlowLink()
    gateway.link = link
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
    gateway = Gateway(asyncio.get_running_loop())
    link: Any = SlowLink()
    link.finish_unregister.set()
    gateway.link = link
    a, b = Conn(8), Conn(8)
    assert await gateway.attach(a) is True
    assert await gateway.attach(b) is False  # the user was here already
    assert await gateway.detach(a) is False
    assert link.where == {8: 1}
    assert await gateway.detach(b) is True
    assert link.where == {}
    assert await gateway.detach(b) is False
