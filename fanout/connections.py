"""This process's client connections, and the batches written to them.

Every server process that accepts WebSockets (a gateway) has one ``LocalConnections`` per event
loop. It keeps which local connections each user has and applies batches to them; a batch
names users, and each of their connections keeps the room's order and drops what it already
has (``fanout.delivery``). Where the gateway must also be known to other processes (the scaled
mode), a ``Link`` built by the transport registers its users and feeds it batches; the embedded
mode has no link: its partitions hand batches straight to ``apply``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol

from fanout import metrics
from fanout.hooks import Connection
from fanout.items import AccessBatch, Batch, EventBatch, UsersBatch

logger = logging.getLogger(__name__)
LIVE = metrics.DELIVERIES.labels("live")


class Link(Protocol):
    """The gateway as other processes see it (the registry of the scaled mode)."""

    async def register(self, user_id: int) -> int:
        """Returns how many other gateways hold the user."""

    async def unregister(self, user_id: int) -> int:
        """Returns how many gateways still hold the user."""

    async def online(self, user_ids: Collection[int]) -> set[int]: ...

    def stop(self) -> None: ...


class LocalConnections:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        link: Callable[[LocalConnections], Link] | None = None,
    ) -> None:
        self.loop = loop
        self.id = secrets.token_hex(6)
        self.connections: dict[int, set[Connection]] = defaultdict(set)
        # Registering and unregistering a user are awaited; one user's run one at a time, so
        # a socket closing while another opens never leaves the user unregistered.
        self.user_locks: dict[int, asyncio.Lock] = {}
        self.registered: set[int] = set()
        self.link: Link | None = link(self) if link is not None else None
        # The gateway's loop lag (``sphere_gateway_loop_lag_seconds``): one timer, no task.
        self.lag_probe = metrics.LoopLagProbe(loop)

    # --- connections ------------------------------------------------------------------------

    async def attach(self, connection: Connection) -> bool:
        """Register a connection; True when its user had no other connection anywhere."""
        user_id = connection.user_id
        conns = self.connections[user_id]
        first_here = not conns
        conns.add(connection)
        metrics.CONNECTIONS.inc()
        if self.link is None:
            return first_here
        async with self.user_lock(user_id):
            if user_id in self.registered:
                return False
            try:
                elsewhere = await self.link.register(user_id)
            except BaseException:
                await self.detach_local(connection)
                raise
            self.registered.add(user_id)
        return elsewhere == 0

    async def detach_local(self, connection: Connection) -> None:
        conns = self.connections.get(connection.user_id)
        if conns is not None and connection in conns:
            conns.discard(connection)
            metrics.CONNECTIONS.dec()
            if not conns:
                del self.connections[connection.user_id]

    async def detach(self, connection: Connection) -> bool:
        """Forget a connection; True when its user has no connection left anywhere."""
        user_id = connection.user_id
        conns = self.connections.get(user_id)
        if conns is None or connection not in conns:
            return False
        conns.discard(connection)
        metrics.CONNECTIONS.dec()
        if conns:
            return False
        del self.connections[user_id]
        if self.link is None:
            return True
        # Shielded: a cancelled caller must not leave the user registered here.
        return await asyncio.shield(self._unregister(user_id))

    async def _unregister(self, user_id: int) -> bool:
        link = self.link
        assert link is not None
        async with self.user_lock(user_id):
            if user_id in self.connections or user_id not in self.registered:
                return False  # a new socket of the user opened meanwhile: it stays
            self.registered.discard(user_id)
            left = await link.unregister(user_id)
        lock = self.user_locks.get(user_id)
        if lock is not None and not lock.locked() and not getattr(lock, "_waiters", None):
            del self.user_locks[user_id]  # nobody waits on it: a later socket makes another
        return left == 0

    def user_lock(self, user_id: int) -> asyncio.Lock:
        lock = self.user_locks.get(user_id)
        if lock is None:
            lock = self.user_locks[user_id] = asyncio.Lock()
        return lock

    def connections_of(self, user_id: int) -> tuple[Connection, ...]:
        return tuple(self.connections.get(user_id, ()))

    async def online(self, user_ids: Collection[int]) -> set[int]:
        """Which of these users have a connection in any gateway."""
        if self.link is None:
            return {u for u in user_ids if u in self.connections}
        return await self.link.online(user_ids)

    # --- the tier's side: registry and hand-off of the embedded mode --------------------------

    async def locate(self, user_ids: Collection[int]) -> dict[str, list[int]]:
        connected = self.connections
        if len(user_ids) <= len(connected):
            here = [u for u in user_ids if u in connected]
        else:
            here = [u for u in list(connected) if u in user_ids]
        return {self.id: here} if here else {}

    async def send(self, batches: Iterable[tuple[str, Batch]]) -> None:
        for _, batch in batches:
            self.apply(batch)

    def apply(self, batch: Batch) -> None:
        if isinstance(batch, EventBatch):
            if batch.seq:
                self._deliver(batch)
            else:
                self._deliver_frame(batch.user_ids, batch.frame)
        elif isinstance(batch, AccessBatch):
            for user_id, frame in zip(batch.user_ids, batch.frames, strict=True):
                for connection in self.connections_of(user_id):
                    if batch.grant:
                        _safely(
                            connection.grant_room,
                            batch.room_id,
                            batch.head_seq,
                            frame,
                            batch.version,
                        )
                    else:
                        _safely(connection.revoke_room, batch.room_id, frame, batch.version)
        elif isinstance(batch, UsersBatch):
            self._deliver_frame(batch.user_ids, batch.frame)

    def _deliver(self, batch: EventBatch) -> None:
        """The hot path: one room event to every local connection of the listed users. A
        connection's failure is logged and never keeps the event from the others."""
        if batch.sent:
            metrics.LATENCY.observe(max(0.0, time.time() - batch.sent))
        room_id, seq, frame = batch.room_id, batch.seq, batch.frame
        connections = self.connections
        written = 0
        for user_id in batch.user_ids:
            conns = connections.get(user_id)
            if not conns:
                continue
            # A socket closing meanwhile leaves the set on a later loop turn, never during
            # this loop; a copy is made only where the user has several sockets here.
            for connection in conns if len(conns) == 1 else tuple(conns):
                try:
                    written += connection.deliver_event(room_id, seq, frame)
                except Exception:
                    logger.exception("fan-out: hand-off to a connection failed")
        if written:
            LIVE.inc(written)

    def _deliver_frame(self, user_ids: Iterable[int], frame: bytes) -> None:
        """An ephemeral frame (presence, typing, read) to every local connection of the
        listed users: as ``_deliver``, a presence storm's path."""
        connections = self.connections
        for user_id in user_ids:
            conns = connections.get(user_id)
            if not conns:
                continue
            for connection in conns if len(conns) == 1 else tuple(conns):
                try:
                    connection.deliver_frame(frame)
                except Exception:
                    logger.exception("fan-out: hand-off to a connection failed")

    def recover(self) -> None:
        """Every connection fetches from the database what it may have missed."""
        for conns in list(self.connections.values()):
            for connection in list(conns):
                _safely(connection.recover)

    def stop(self) -> None:
        self.lag_probe.stop()
        if self.link is not None:
            self.link.stop()


def _safely(hand_off: Callable[..., None], *args: Any) -> None:
    """One connection's failure never keeps a batch from the others."""
    try:
        hand_off(*args)
    except Exception:
        logger.exception("fan-out: hand-off to a connection failed")
