"""Helpers for the tier's long-running retry loops."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """End a retry loop whose task was cancelled, even when the cancellation came back as some
    other error. redis-py, cancelled in the middle of a read, may drop the connection and raise
    a connection error instead of ``CancelledError``; a loop that catches errors to retry would
    then go on for ever and hold up the shutdown that cancelled it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
