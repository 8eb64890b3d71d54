"""What the fan-out tier needs from the apps, registered at start-up.

The tier knows user ids, room ids, seqs and bytes only. The apps give it typed objects in their
``AppConfig.ready``: a ``RoomStore`` (who reads a room, and the room's stored events: ``chat``)
and a ``LinkCounter`` (link reach: ``reach``). Asking for a hook nobody registered raises
``HookMissing`` at once, naming what is missing: a tier that silently delivered to nobody or
counted nothing would be far harder to diagnose. The gateway hands the tier its connections
as ``Connection`` objects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A persistent room event as the database holds it, encoded as its frame; for the
    outbox sweep also its community and links (link reach)."""

    room_id: int
    seq: int
    frame: bytes
    community_id: int = 0
    urls: tuple[str, ...] = ()


class RoomStore(Protocol):
    """The rooms as the database holds them. Synchronous (it queries the database): the tier
    calls it in a worker thread."""

    def readers(self, room_id: int) -> tuple[frozenset[int], int]:
        """The user ids that can read the room now, and the room's access version read before
        them (so that the version never claims more than the readers show)."""

    def events_between(
        self, room_id: int, after: int, upto: int, user_id: int
    ) -> list[StoredEvent] | None:
        """The room's events with ``after < seq <= upto`` in seq order, or None when the user
        cannot read the room now."""

    def heads(self) -> list[tuple[int, int]]:
        """``(room_id, head_seq)`` of every room with an event (head_seq > 0): what the outbox
        sweep compares with the seqs the tier has routed."""

    def events_after(
        self, room_id: int, after_seq: int, limit: int, older_than_s: float
    ) -> list[StoredEvent]:
        """The room's events with seq > ``after_seq``, in seq order, at most ``limit``, with
        their community and links: only those committed more than ``older_than_s`` ago (a
        younger one may still be on its way) and within the sweep's window (older ones are
        left to ``sync`` and gap filling). For the outbox sweep."""


class LinkCounter(Protocol):
    """Link reach: counts the readers a message carrying URLs reached."""

    async def record(
        self,
        *,
        community_id: int,
        urls: Sequence[str],
        reader_ids: Collection[int],
        message: tuple[int, int],
        client: Any = None,
    ) -> None:
        """Count one message; never raises for a failing store. ``client``: the Redis client
        of the calling worker, where there is one."""


class HookMissing(RuntimeError):
    """The tier was asked for a hook no app registered (an app missing from
    ``INSTALLED_APPS``, or code running before Django's set-up)."""


class Hooks:
    def __init__(self) -> None:
        self._store: RoomStore | None = None
        self._links: LinkCounter | None = None

    def register(self, *, store: RoomStore | None = None, links: LinkCounter | None = None) -> None:
        if store is not None:
            self._store = store
        if links is not None:
            self._links = links

    @property
    def store(self) -> RoomStore:
        if self._store is None:
            raise HookMissing("no RoomStore registered with the fan-out tier (the chat app)")
        return self._store

    @property
    def links(self) -> LinkCounter:
        if self._links is None:
            raise HookMissing("no LinkCounter registered with the fan-out tier (the reach app)")
        return self._links


hooks = Hooks()


class Connection(Protocol):
    """A client connection as the gateway exposes it to the tier."""

    user_id: int

    def deliver_event(self, room_id: int, seq: int, frame: bytes) -> bool:
        """Offer a room event; the connection keeps per-room order and drops duplicates.
        True when it was written at once."""

    def deliver_frame(self, frame: bytes) -> None:
        """Send an ephemeral frame (no seq) as it is."""

    def revoke_room(self, room_id: int, frame: bytes, version: int = 0) -> None:
        """Stop the room on this connection at once, then send ``frame`` (room.removed);
        ignored when the connection applied a change of ``version`` or newer already."""

    def grant_room(self, room_id: int, head_seq: int, frame: bytes, version: int = 0) -> None:
        """Start the room live after ``head_seq`` and send ``frame`` (room.added); ignored
        when the connection applied a change of ``version`` or newer already."""

    def recover(self) -> None:
        """Fetch from the database whatever live delivery may have missed (the transport lost
        its state)."""

    def close_for(self, code: int, credential: str) -> None:
        """Close with ``code`` at once (an account disabled, a credential revoked): when
        ``credential`` is empty, or names the credential this connection was opened with."""
