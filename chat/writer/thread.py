"""The process's writer thread and the way in (``submit``)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from chat.writer.batch import store_batch
from chat.writer.sends import Send, Stored
from chat.writer.statements import _tune

logger = logging.getLogger(__name__)

# --- the thread -------------------------------------------------------------------------------


class Writer:
    """The process's writer thread. ``submit`` may be called from any thread."""

    def __init__(self, batch_max: int, linger_s: float) -> None:
        self.batch_max = batch_max
        self.linger_s = linger_s
        self.queue: queue.SimpleQueue[Send | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="sphere-writer", daemon=True)
        self.last_size = 0
        self.observe: Callable[[Send], None] = _observe
        self.thread.start()

    def submit(self, send: Send) -> Future[Stored]:
        future: Future[Stored] = Future()
        send.future = future
        self.queue.put(send)
        return future

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _take(self) -> list[Send] | None:
        first = self.queue.get()
        if first is None:
            return None
        batch = [first]
        # Under load (the last batch had company), wait a moment for more: fewer, fuller
        # transactions. A lone send at a quiet time goes at once.
        deadline = time.monotonic() + self.linger_s if self.last_size > 1 else 0.0
        while len(batch) < self.batch_max:
            try:
                timeout = deadline - time.monotonic()
                send = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if send is None:
                self.queue.put(None)  # stop after this batch
                break
            batch.append(send)
        self.last_size = len(batch)
        return batch

    def _run(self) -> None:
        try:
            while (batch := self._take()) is not None:
                self._store(batch)
        finally:
            connection.close()

    def _store(self, batch: list[Send]) -> None:
        try:
            _tune()
            outcomes = store_batch(batch)
        except Exception as exc:
            _recover(exc)
            # One message at a time: a bad one fails alone, its neighbours are stored.
            outcomes = []
            for send in batch:
                try:
                    _tune()
                    outcomes.extend(store_batch([send]))
                except Exception as alone:
                    _recover(alone)
                    logger.warning("writer: a message could not be stored (%s)",
                                   type(alone).__name__)  # fmt: skip
                    outcomes.append(alone)
        for send, outcome in zip(batch, outcomes, strict=True):
            future = send.future
            if future is None or future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
            self.observe(send)


def _recover(exc: Exception) -> None:
    """After a failed transaction: a connection that broke is closed (the next batch opens a
    new one)."""
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DatabaseError) and connection.connection is not None and
        not connection.is_usable()
    ):  # fmt: skip
        connection.close()


def _observe(send: Send) -> None:
    """From the send's arrival to its answer: ``sphere_send_seconds`` and the slowest rooms'
    ``sphere_room_send_seconds`` (docs/operations.md)."""
    from fanout.metrics import observe_send

    observe_send(send.room_id, time.monotonic() - send.arrived)


_writer: Writer | None = None
_lock = threading.Lock()


def writer() -> Writer:
    """The process's writer, started on first use."""
    global _writer
    current = _writer
    if current is not None and current.thread.is_alive():
        return current
    with _lock:
        if _writer is None or not _writer.thread.is_alive():
            _writer = Writer(settings.WRITER_BATCH, settings.WRITER_LINGER_MS / 1000)
        return _writer


def stop_writer() -> None:
    """Stop the writer (its connection closes); the next send starts a new one."""
    global _writer
    with _lock:
        current, _writer = _writer, None
    if current is not None:
        current.stop()


def submit(send: Send) -> Future[Stored]:
    """Store ``send``: through the writer thread, or at once in the caller's transaction when
    there is one (the send then commits, or not, with it)."""
    if connection.in_atomic_block:
        future: Future[Stored] = Future()
        send.future = future
        try:
            outcome = store_batch([send])[0]
        except Exception as exc:
            outcome = exc
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        return future
    return writer().submit(send)
