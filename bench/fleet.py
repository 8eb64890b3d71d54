"""The client fleet: WebSocket clients in separate processes, each process holding many
connections on one event loop (picows: a frame costs the client a few microseconds, so the load
generator leaves the cores to the servers under test).

A process opens its connections, says it is ready, then obeys commands from the harness:
``round`` (start counting a new round's messages), ``storm`` (drop and reopen a share of its
connections every second), ``collect`` (report the round), ``quit``. Every connection counts
what it receives in a ``Tally``; a shared counter per process shows the harness its progress.

Two dialects: ``sphere`` (ticket handshake, ``hello``, ``sync`` from the last seq held, pings
for the heartbeat) and ``relay`` (the tutorial and the bare server: a path per room, frames
``{"message": body}``). A message body is ``"<round> <n> <sent time> …"``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from picows import WSListener, WSMsgType, ws_connect

from bench.stats import Tally, Verdict

CONNECT_AT_ONCE = 32
PING_EVERY_S = 20.0
OPEN_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Target:
    """One connection to open: its room and how to reach it (``tickets``: Sphere's single-use
    handshake tickets, one used per opening)."""

    room: int
    url: str
    tickets: list[str] = field(default_factory=list)


def body(round_id: int, n: int, sent: float, size: int = 80) -> str:
    text = f"{round_id} {n} {sent:.6f} "
    return text + "x" * max(0, size - len(text))


def parse_body(text: str) -> tuple[int, int, float]:
    round_id, n, sent = text.split(" ", 3)[:3]
    return int(round_id), int(n), float(sent)


class Conn:
    __slots__ = (
        "last_seq",
        "listener",
        "opening",
        "room",
        "synced",
        "tally",
        "target",
        "transport",
    )

    def __init__(self, target: Target) -> None:
        self.target = target
        self.room = target.room
        self.tally = Tally()
        self.transport: Any = None
        self.listener: Any = None
        self.last_seq = 0
        self.synced: asyncio.Future[None] | None = None
        self.opening = False


class Fleet:
    def __init__(self, dialect: str, targets: list[Target], progress: Any) -> None:
        self.dialect = dialect
        self.sphere = dialect == "sphere"
        self.conns = [Conn(t) for t in targets]
        self.progress = progress
        self.round = -1
        self.latest: dict[tuple[int, int], float] = {}
        self.late = 0
        self.closes: Counter[int] = Counter()
        self.reopened = 0
        self.resyncs = 0
        self.errors: Counter[str] = Counter()
        self.stopping = False
        self.storm: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    # --- connections ---------------------------------------------------------------------

    async def open(self, conn: Conn) -> None:
        fleet = self

        class Link(WSListener):
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == WSMsgType.TEXT:
                    fleet.receive(conn, frame.get_payload_as_bytes())
                elif frame.msg_type == WSMsgType.CLOSE:
                    fleet.closes[frame.get_close_code()] += 1

            def on_ws_disconnected(self, transport: Any) -> None:
                fleet.dropped(conn, transport)

        url = conn.target.url
        if self.sphere:
            if not conn.target.tickets:
                raise RuntimeError("no ticket left for this connection")
            url = f"{url}?ticket={conn.target.tickets.pop()}"
            conn.synced = asyncio.get_running_loop().create_future()
        headers = None if self.sphere else {"Origin": "http://127.0.0.1"}
        conn.opening = True
        try:
            transport, listener = await ws_connect(
                Link,
                url,
                websocket_handshake_timeout=OPEN_TIMEOUT_S,
                extra_headers=headers,
                max_frame_size=1 << 22,
                read_buffer_init_size=4096,
            )
            conn.transport, conn.listener = transport, listener
            if conn.synced is not None:
                await asyncio.wait_for(conn.synced, OPEN_TIMEOUT_S)
        finally:
            conn.opening = False

    async def open_all(self) -> int:
        """Open every connection, a few at a time; returns how many failed."""
        failed = 0
        gate = asyncio.Semaphore(CONNECT_AT_ONCE)

        async def one(conn: Conn) -> None:
            nonlocal failed
            async with gate:
                for attempt in range(3):
                    try:
                        await self.open(conn)
                        return
                    except Exception as exc:
                        self.errors[type(exc).__name__] += 1
                        await asyncio.sleep(0.5 * (attempt + 1))
                failed += 1

        await asyncio.gather(*(one(c) for c in self.conns))
        return failed

    def dropped(self, conn: Conn, transport: Any) -> None:
        if conn.transport is not transport:
            return
        conn.transport = None
        if self.stopping or conn.opening:
            return
        # The server closed it (4429, 4408, a restart): reopen and resume, as a client does.
        if not self.sphere or conn.target.tickets:
            self._spawn(self._reopen(conn))

    async def _reopen(self, conn: Conn) -> None:
        await asyncio.sleep(0.2)
        try:
            await self.open(conn)
            self.reopened += 1
        except Exception as exc:
            self.errors[type(exc).__name__] += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- frames -----------------------------------------------------------------------------

    def receive(self, conn: Conn, payload: bytes) -> None:
        try:
            frame = orjson.loads(payload)
            if self.sphere:
                kind = frame.get("type")
                if kind != "message.new":
                    self._control(conn, kind, frame)
                    return
                seq = frame["seq"]
                if seq > conn.last_seq:
                    conn.last_seq = seq
                text = frame["message"]["body"]
            else:
                text = frame["message"]
            round_id, n, _sent = parse_body(text)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            self.errors["unreadable frame"] += 1
            return
        if round_id != self.round:
            self.late += 1
            return
        if conn.tally.record(n):
            self.progress.value += 1
            key = (conn.room, n)
            now = time.time()
            if now > self.latest.get(key, 0.0):
                self.latest[key] = now

    def _control(self, conn: Conn, kind: str | None, frame: dict[str, Any]) -> None:
        transport = conn.transport
        if kind == "hello" and transport is not None:
            rooms = {str(conn.room): conn.last_seq} if conn.last_seq else {}
            transport.send(WSMsgType.TEXT, orjson.dumps({"type": "sync", "rooms": rooms}))
        elif kind == "synced":
            if conn.synced is not None and not conn.synced.done():
                conn.synced.set_result(None)
        elif kind == "room.resync" and transport is not None:
            self.resyncs += 1
            rooms = {str(conn.room): conn.last_seq}
            transport.send(WSMsgType.TEXT, orjson.dumps({"type": "sync", "rooms": rooms}))
        elif kind == "error":
            self.errors[f"error {frame.get('code')}"] += 1

    # --- rounds -------------------------------------------------------------------------------

    def start_round(self, round_id: int) -> None:
        self.round = round_id
        for conn in self.conns:
            conn.tally = Tally()
        self.latest = {}
        self.late = 0
        self.progress.value = 0

    def verdict(self, sent: dict[int, int]) -> Verdict:
        verdict = Verdict()
        for conn in self.conns:
            verdict.add(conn.tally, sent.get(conn.room, 0))
        return verdict

    async def storm_every_second(self, share: float) -> None:
        """Each second, drop ``share`` of the open connections without a closing handshake
        (a lost network) and reopen them; Sphere clients resume with ``sync``."""
        rng = random.Random(os.getpid())  # noqa: S311 - load shape, not security
        carry = 0.0
        while True:
            await asyncio.sleep(1.0)
            carry += share * len(self.conns)
            count, carry = int(carry), carry - int(carry)
            candidates = [
                c
                for c in self.conns
                if c.transport is not None and (not self.sphere or c.target.tickets)
            ]
            for conn in rng.sample(candidates, min(count, len(candidates))):
                transport = conn.transport
                conn.transport = None
                transport.underlying_transport.abort()
                self._spawn(self._reopen(conn))

    async def ping(self) -> None:
        """Sphere closes a connection silent for three heartbeats: keep them alive."""
        while True:
            await asyncio.sleep(PING_EVERY_S)
            for conn in self.conns:
                if conn.transport is not None:
                    conn.transport.send_ping()


def cpu_now() -> float:
    times = os.times()
    return times.user + times.system


async def _serve(
    dialect: str, targets: list[Target], commands: Any, results: Any, progress: Any
) -> None:
    fleet = Fleet(dialect, targets, progress)
    # Pings from the start: opening thousands of connections takes longer than the server's
    # heartbeat allows the first of them to stay silent.
    pinger = asyncio.ensure_future(fleet.ping()) if fleet.sphere else None
    failed = await fleet.open_all()
    results.put(("ready", len(targets) - failed, failed, dict(fleet.errors)))
    loop = asyncio.get_running_loop()
    cpu_start = cpu_now()
    while True:
        command, arg = await loop.run_in_executor(None, commands.get)
        if command == "round":
            fleet.start_round(arg)
            cpu_start = cpu_now()
        elif command == "storm":
            if fleet.storm is not None:
                fleet.storm.cancel()
                fleet.storm = None
            if arg:
                fleet.storm = asyncio.ensure_future(fleet.storm_every_second(arg))
        elif command == "collect":
            results.put(
                (
                    "round",
                    fleet.verdict(arg),
                    fleet.latest,
                    cpu_now() - cpu_start,
                    {
                        "late": fleet.late,
                        "reopened": fleet.reopened,
                        "resyncs": fleet.resyncs,
                        "closes": dict(fleet.closes),
                        "errors": dict(fleet.errors),
                    },
                )
            )
        elif command == "quit":
            break
    fleet.stopping = True
    if pinger is not None:
        pinger.cancel()
    for conn in fleet.conns:
        if conn.transport is not None:
            conn.transport.disconnect()


def fleet_main(
    dialect: str, targets: list[Target], commands: Any, results: Any, progress: Any
) -> None:
    """A fleet process's entry point."""
    asyncio.run(_serve(dialect, targets, commands, results, progress))


@dataclass
class FleetHandle:
    """The harness's side of one fleet process."""

    process: Any  # a spawned multiprocessing process
    commands: Any
    results: Any
    progress: Any
    size: int


def start_fleet(dialect: str, targets: list[Target], processes: int) -> list[FleetHandle]:
    ctx = mp.get_context("spawn")
    handles = []
    per = -(-len(targets) // processes)
    for start in range(0, len(targets), per):
        chunk = targets[start : start + per]
        commands, results = ctx.Queue(), ctx.Queue()
        progress = ctx.RawValue("q", 0)
        process = ctx.Process(
            target=fleet_main, args=(dialect, chunk, commands, results, progress), daemon=True
        )
        process.start()
        handles.append(FleetHandle(process, commands, results, progress, len(chunk)))
    return handles
