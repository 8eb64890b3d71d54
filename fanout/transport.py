"""The mode, decided in one place: the transport that carries the tier's items.

``current()`` builds, once per process, the transport the settings ask for: the embedded one
(the partitions as tasks of the server process, ``fanout.embedded``) or the Redis one (partition
streams, gateway inboxes and a registry shared by every process, ``fanout.redis``). Everything
else in the apps and the tier asks the transport, never the settings, which mode runs:
publishing, the connections of this process, who is online, health and partition metrics.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from fanout.connections import Link, LocalConnections
from fanout.items import Item


@dataclass(frozen=True, slots=True)
class PartitionStats:
    partition: int
    lag: float | None  # entries not yet read by the partition's worker (None: not known)
    pending: float | None  # read and not yet acknowledged
    dead_letters: float | None


class Transport:
    """The interface every mode implements. ``submit`` and ``submit_many`` may be called from
    any thread; the other methods say where they run."""

    kind = ""

    def __init__(self) -> None:
        self._local: LocalConnections | None = None
        self._lock = threading.Lock()

    # --- publishing ------------------------------------------------------------------------

    def submit(self, item: Item) -> bool:
        """Hand an item to its partition; False when the transport did not take it."""
        raise NotImplementedError

    def submit_many(self, items: Sequence[Item]) -> bool:
        """Hand many items to their partitions in one go, in order (a committed batch of room
        events); False when the transport did not take them all. A transport with a cheaper
        way than one ``submit`` per item overrides this."""
        taken = True
        for item in items:
            taken = self.submit(item) and taken
        return taken

    # --- this process's connections ----------------------------------------------------------

    def link(self) -> Callable[[LocalConnections], Link] | None:
        """How this process's connections are made known to the others (None: they need not)."""
        return None

    def connections(self) -> LocalConnections:
        """The connections of the running event loop (a gateway), made on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._local is None or self._local.loop is not loop:
                if self._local is not None:
                    self._local.stop()
                self._local = LocalConnections(loop, self.link())
            return self._local

    def current_connections(self) -> LocalConnections | None:
        local = self._local
        if local is None or local.loop.is_closed():
            return None
        return local

    def on_request(self) -> None:
        """Called on the server's event loop with each new request (HTTP or socket)."""

    def online(self, user_ids: Collection[int]) -> set[int]:
        """From synchronous code: which of these users have a connection anywhere."""
        raise NotImplementedError

    # --- operations --------------------------------------------------------------------------

    async def ready(self) -> bool:
        """True when the transport answers (``/healthz``)."""
        raise NotImplementedError

    def partition_stats(self) -> list[PartitionStats] | None:
        """Per-partition backlog for ``/metrics``; None where partitions have no backlog to
        show (in process)."""
        return None

    def shared_redis(self) -> Any:
        """The synchronous Redis client shared by every process, where the mode has one (state
        kept beside the tier, e.g. link reach); None otherwise."""
        return None

    def worker(self) -> Any:
        """A partition worker process's work (the scaled mode's ``fanout_worker``)."""
        raise NotImplementedError(f"the {self.kind} transport has no worker processes")

    def stop(self) -> None:
        if self._local is not None:
            self._local.stop()


_transport: Transport | None = None
_built_for: bool | None = None
_lock = threading.Lock()


def current() -> Transport:
    """The process's transport, built on first use from the settings."""
    global _transport, _built_for
    scaled = bool(settings.SCALED)
    transport = _transport
    if transport is not None and _built_for == scaled:
        return transport
    with _lock:
        if _transport is None or _built_for != scaled:
            if _transport is not None:
                _transport.stop()
            if scaled:
                from fanout.redis import RedisTransport

                _transport = RedisTransport()
            else:
                from fanout.embedded import EmbeddedTransport

                _transport = EmbeddedTransport()
            _built_for = scaled
        return _transport


def start_with_server(app: Any) -> Any:
    """Wrap the ASGI application so that the transport hears of the server's first request of
    any kind, not only of its first WebSocket: in the embedded mode the partitions start
    then, so a message posted over REST while nobody is connected is still fanned out (link
    reach counts every reader)."""

    async def application(scope: Any, receive: Any, send: Any) -> Any:
        current().on_request()
        return await app(scope, receive, send)

    return application
