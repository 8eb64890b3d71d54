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
from fanout.items import AccessBatch, Batch, CloseBatch, EventBatch, UsersBatch

logger = logging.getLogger(__name__)
LIVE = metrics.DELIVERIES.labels("live")


def pending_online(token: str | bytes | None, now_ms: int, grace_s: float) -> bool:
    """Whether a pending offline's ``token`` (made by ``leave``) still counts its user as
    online at ``now_ms``: within the grace and a margin for the announcing timer."""
    if not token:
        return False
    raw = token.decode() if isinstance(token, bytes) else token
    _, _, at = raw.rpartition(".")
    return at.isdigit() and now_ms - int(at) <= grace_s * 1000 + 5000


class TooManyConnections(Exception):
    """The user holds the most connections allowed (``WS_MAX_PER_USER``) already."""


class Link(Protocol):
    """The gateway as other processes see it (the registry of the scaled mode)."""

    async def admit(self, user_id: int, here: int, limit: int) -> tuple[int, bool]:
        """Record that this gateway holds ``here`` connections of the user, unless that makes
        more than ``limit`` across the live gateways (0: no cap; raises TooManyConnections).
        Returns how many other gateways hold the user, and whether the user came back within
        the grace of a close whose ``offline`` is still pending (then cancelled)."""

    async def count(self, user_id: int, here: int) -> None:
        """This gateway now holds ``here`` (at least 1) connections of the user."""

    async def unregister(self, user_id: int, token: str) -> int:
        """Returns how many gateways still hold the user; at none, ``token`` marks the user's
        ``offline`` as pending."""

    async def offline_due(self, user_id: int, token: str) -> bool:
        """Whether the user's pending ``offline`` is still ``token``'s and the user has no
        connection anywhere; if so it is taken (only one caller gets True)."""

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
        # The embedded mode's pending ``offline`` per user (the scaled mode keeps it in Redis):
        # the token of the close that left the user with no connection.
        self.gone: dict[int, str] = {}
        self.link: Link | None = link(self) if link is not None else None
        # The gateway's loop lag (``sphere_gateway_loop_lag_seconds``): one timer, no task.
        self.lag_probe = metrics.LoopLagProbe(loop)

    # --- connections ------------------------------------------------------------------------

    async def attach(self, connection: Connection, limit: int = 0) -> bool:
        """Register a connection; True when its user comes online for those who hear of it:
        no other connection anywhere, and not back within the grace of a close whose
        ``offline`` is still pending. Raises TooManyConnections when the user holds ``limit``
        connections already, in every gateway together (0: no cap)."""
        user_id = connection.user_id
        conns = self.connections.get(user_id)
        if self.link is None and limit and conns is not None and len(conns) >= limit:
            raise TooManyConnections
        first_here = not conns
        self.connections[user_id].add(connection)
        metrics.CONNECTIONS.inc()
        if self.link is None:
            return first_here and self.gone.pop(user_id, None) is None
        async with self.user_lock(user_id):
            here = len(self.connections.get(user_id, ()))
            if connection not in self.connections.get(user_id, ()):
                return False  # closed while it waited: its close did the bookkeeping
            try:
                elsewhere, resumed = await self.link.admit(user_id, here, limit)
            except BaseException:
                await self.detach_local(connection)
                raise
            first = user_id not in self.registered
            self.registered.add(user_id)
        return first and elsewhere == 0 and not resumed

    async def detach_local(self, connection: Connection) -> None:
        conns = self.connections.get(connection.user_id)
        if conns is not None and connection in conns:
            conns.discard(connection)
            metrics.CONNECTIONS.dec()
            if not conns:
                del self.connections[connection.user_id]

    async def detach(self, connection: Connection) -> bool:
        """Forget a connection; True when its user has no connection left anywhere."""
        return await self.leave(connection) is not None

    async def leave(self, connection: Connection) -> str | None:
        """Forget a connection. When its user has no connection left anywhere, the user's
        ``offline`` becomes pending and its token is returned: ``offline_due`` tells, after
        the grace, whether it is still to be announced."""
        user_id = connection.user_id
        conns = self.connections.get(user_id)
        if conns is None or connection not in conns:
            return None
        conns.discard(connection)
        metrics.CONNECTIONS.dec()
        if conns:
            if self.link is not None:
                await asyncio.shield(self._recount(user_id))
            return None
        del self.connections[user_id]
        # The token ends with the close's time (ms): a pending offline left behind by a gateway
        # that died before its grace ran out stops counting as online (``pending_online``).
        token = f"{secrets.token_hex(8)}.{int(time.time() * 1000)}"
        if self.link is None:
            self.gone[user_id] = token
            return token
        # Shielded: a cancelled caller must not leave the user registered here.
        return token if await asyncio.shield(self._unregister(user_id, token)) else None

    async def offline_due(self, user_id: int, token: str) -> bool:
        """After the grace: whether the ``offline`` that ``leave`` made pending with ``token``
        is to be announced now (no connection anywhere since, and no later close's). True for
        one caller at most."""
        if self.link is None:
            if user_id in self.connections or self.gone.get(user_id) != token:
                return False
            del self.gone[user_id]
            return True
        return await self.link.offline_due(user_id, token)

    async def _recount(self, user_id: int) -> None:
        link = self.link
        assert link is not None
        async with self.user_lock(user_id):
            here = len(self.connections.get(user_id, ()))
            if here and user_id in self.registered:
                await link.count(user_id, here)

    async def _unregister(self, user_id: int, token: str) -> bool:
        link = self.link
        assert link is not None
        async with self.user_lock(user_id):
            if user_id in self.connections or user_id not in self.registered:
                return False  # a new socket of the user opened meanwhile: it stays
            self.registered.discard(user_id)
            left = await link.unregister(user_id, token)
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
        """Which of these users have a connection in any gateway, or closed their last one
        within the grace (their ``offline`` still pending: they count as online until it is
        announced, so that a return within the grace, which announces nothing, is right)."""
        if self.link is None:
            return {u for u in user_ids if u in self.connections or u in self.gone}
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
        elif isinstance(batch, CloseBatch):
            for user_id in batch.user_ids:
                for connection in self.connections_of(user_id):
                    _safely(connection.close_for, batch.code, batch.credential)

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
