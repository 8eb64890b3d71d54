"""What the fan-out tier needs from the apps, registered at start-up.

The tier knows user ids, room ids, seqs and bytes only. The chat app registers who reads a room
and how to read a room's events back from the database; the gateway registers its connections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A persistent room event as the database holds it, encoded as its frame; for the
    outbox sweep also its community and links (link reach)."""

    room_id: int
    seq: int
    frame: bytes
    community_id: int = 0
    urls: tuple[str, ...] = ()


def _no_readers(room_id: int) -> tuple[frozenset[int], int]:
    return frozenset(), 0


def _no_events(room_id: int, after: int, upto: int, user_id: int) -> list[StoredEvent] | None:
    return []


def _nothing_unpublished(older_than_s: float, limit: int) -> list[StoredEvent]:
    return []


def _mark_nothing(events: list[tuple[int, int]]) -> None:
    return None


class Resolvers:
    """Callbacks from the apps; synchronous (they touch the database), run in a thread."""

    def __init__(self) -> None:
        self.readers: Callable[[int], tuple[frozenset[int], int]] = _no_readers
        self.events_between: Callable[[int, int, int, int], list[StoredEvent] | None] = _no_events
        self.unpublished: Callable[[float, int], list[StoredEvent]] = _nothing_unpublished
        self.mark_published: Callable[[list[tuple[int, int]]], None] = _mark_nothing


resolvers = Resolvers()


def register(
    *,
    readers: Callable[[int], tuple[frozenset[int], int]],
    events_between: Callable[[int, int, int, int], list[StoredEvent] | None],
    unpublished: Callable[[float, int], list[StoredEvent]] | None = None,
    mark_published: Callable[[list[tuple[int, int]]], None] | None = None,
) -> None:
    """``readers(room_id)``: the user ids that can read the room now, and the room's access
    version read before them (so that the version never claims more than the readers show).
    ``events_between(room_id, after, upto, user_id)``: the room's events with
    ``after < seq <= upto`` in seq order, or None when the user cannot read the room now.
    ``unpublished(older_than_s, limit)``: committed events never marked published, oldest first.
    ``mark_published([(room_id, seq), ...])``: mark them published."""
    resolvers.readers = readers
    resolvers.events_between = events_between
    if unpublished is not None:
        resolvers.unpublished = unpublished
    if mark_published is not None:
        resolvers.mark_published = mark_published


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
