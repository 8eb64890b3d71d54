"""Database work of the gateway, off the event loop.

Channels' default runs every such call of a process in one shared thread, so a burst of
connections (a reconnect storm) queues behind one database round trip at a time. The gateway's
calls need no thread affinity (each is a whole unit of work, and a connection awaits each of its
frames before the next), so they run in the loop's thread pool, each thread with its own
database connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async

T = TypeVar("T")


def in_thread(func: Callable[..., T]) -> Any:
    return database_sync_to_async(func, thread_sensitive=False)
