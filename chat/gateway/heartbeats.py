"""The heartbeat: a connection silent for three heartbeats is closed with 4408.

Life is any frame from the client, or a WebSocket ping (docs/protocol.md, "Staying in step").
One task per event loop watches every connection: no task per connection, whose memory would
grow with every idle socket.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Protocol

from django.conf import settings

from chat import protocol as p


class Watched(Protocol):
    """What the heartbeat needs of a connection."""

    closed: bool

    def silent_for(self, now: float) -> float:
        """Seconds since the connection's last sign of life."""

    def close_soon(self, code: int) -> None:
        """Close the connection with ``code``, without waiting for it."""


class Heartbeats:
    def __init__(self) -> None:
        self.watched: weakref.WeakSet[Watched] = weakref.WeakSet()
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def watch(self, connection: Watched) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop, self.watched = loop, weakref.WeakSet()
            self.task = loop.create_task(self._run())
        self.watched.add(connection)

    def forget(self, connection: Watched) -> None:
        self.watched.discard(connection)

    async def _run(self) -> None:
        while True:
            period = settings.WS_HEARTBEAT_S
            await asyncio.sleep(period / 2)
            now = time.monotonic()
            for connection in list(self.watched):
                if not connection.closed and connection.silent_for(now) > 3 * period:
                    self.watched.discard(connection)
                    connection.close_soon(p.CLOSE_HEARTBEAT)


heartbeats = Heartbeats()
