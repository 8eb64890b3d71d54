"""Rounds of load against one system: a population of rooms and connected members, senders
on an open-loop schedule, and the figures of each round.

A round numbers its messages afresh; the fleet counts what arrives of this round only, so a
late frame of an earlier round never counts twice. Server CPU is read from ``/proc`` for every
process the system runs on (Redis and PostgreSQL included), from the first send to the end of
the drain; the drain ends when every member holds every message or at its deadline. A session
also measures what its system costs at rest, per process, with every connection open.

In a DM (a population whose ``sender_is_member``) the sender is one of the two members: its
connection ``sync``s, receives its own messages and counts them as the other member's does.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from picows import WSListener, WSMsgType, ws_connect

from bench.fleet import CONNECT_AT_ONCE, FleetHandle, Target, body, cpu_now, parse_body, start_fleet
from bench.stats import Tally, Verdict, idle_costs, latencies, merge_latest, percentile
from bench.systems import (
    INFLIGHT,
    System,
    cpu_by_role,
    cpu_seconds,
    cpu_seconds_fine,
    cpu_spent,
    rss_bytes,
)

READY_TIMEOUT_S = 600.0
LATE_MS = 1000.0  # a round whose p99 send → last member passes this did not keep up
round_ids = itertools.count(1)


@dataclass
class Round:
    """The figures of one round of one system."""

    scenario: str
    system: str
    rooms: int
    members: int
    offered: float  # messages per second offered; 0 for a burst
    sent: int
    expected: int
    delivered: int
    seconds: float
    server_cpu: float
    loadgen_cpu: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    lost: int
    duplicated: int
    disordered: int
    idle_kib_per_connection: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.delivered / self.server_cpu if self.server_cpu > 0 else 0.0

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.disordered == 0

    @property
    def cpu_per_message_ms(self) -> float:
        """Server CPU (every process of the system) per message sent, in milliseconds."""
        return self.server_cpu * 1000 / self.sent if self.sent else math.nan

    @property
    def delivered_in_time(self) -> bool:
        """Kept up: every message delivered to every member once and in order, and p99 send →
        last member within a second."""
        return (
            self.sent > 0
            and self.delivered == self.expected
            and self.clean
            and self.p99_ms <= LATE_MS
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deliveries_per_s"] = self.deliveries_per_s
        data["per_cpu_second"] = self.per_cpu_second
        if self.sent:
            data["cpu_per_message_ms"] = self.cpu_per_message_ms
            data["delivered_in_time"] = self.delivered_in_time
        return data


def steady(
    rooms: int, rate: float, seconds: float, *, skew: float = 0.0, seed: int = 7
) -> list[tuple[float, int]]:
    """``rate`` messages per second in all for ``seconds``: (offset, room index) in time
    order. Rooms take turns; with ``skew`` > 0 a room of rank k gets a share proportional to
    1 / k**skew (a few busy rooms, a long quiet tail)."""
    count = max(1, round(rate * seconds))
    if skew <= 0:
        return [(n / rate, n % rooms) for n in range(count)]
    rng = random.Random(seed)  # noqa: S311 - load shape
    weights = [1 / (k + 1) ** skew for k in range(rooms)]
    picks = rng.choices(range(rooms), weights=weights, k=count)
    return [(n / rate, room) for n, room in enumerate(picks)]


def burst(count: int, room: int = 0) -> list[tuple[float, int]]:
    """``count`` messages back to back into one room."""
    return [(0.0, room)] * count


class Sender:
    """One room's sending connection. Sphere's sender pipelines within the protocol's window:
    up to ``INFLIGHT`` sends await their answer (``ack`` or ``error``, matched by
    ``client_msg_id`` and ``ref``); a send due while the window is full waits here, in order,
    for an answer to free a slot, and its latency counts from its scheduled time.

    A ``member`` sender (a DM's) is also one of the room's members: it ``sync``s once open, so
    that the room's events flow to it (docs/protocol.md), and keeps a ``Tally`` of the
    messages it receives, as a fleet connection does."""

    def __init__(self, system: System, target: Target, *, member: bool = False) -> None:
        self.system, self.target = system, target
        self.member = member
        self.synced: asyncio.Future[None] | None = None
        self.round = -1
        self.tally = Tally()
        self.latest: dict[tuple[int, int], float] = {}
        self.late = 0
        self.transport: Any = None
        self.hello: asyncio.Future[None] | None = None
        self.errors: Counter[str] = Counter()
        self.acks = 0
        self.acked_at: dict[str, float] = {}  # client_msg_id -> when its ack arrived
        self.awaiting: set[str] = set()  # sends on the wire without an answer yet
        self.waiting: deque[tuple[str, bytes]] = deque()  # due, held for a slot
        self.held = 0  # sends of this round that waited for a slot

    async def open(self) -> None:
        sender = self
        self.hello = asyncio.get_running_loop().create_future()

        class Listener(WSListener):
            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if frame.msg_type == WSMsgType.TEXT and sender.system.dialect == "sphere":
                    sender.frame(orjson.loads(frame.get_payload_as_bytes()))

        url, headers = self.target.url, {"Origin": "http://127.0.0.1"}
        if self.system.dialect == "sphere":
            url, headers = f"{url}?ticket={self.target.tickets.pop()}", {}
        self.transport, _ = await ws_connect(
            Listener, url, extra_headers=headers or None, websocket_handshake_timeout=60
        )
        if self.system.dialect == "sphere":
            await asyncio.wait_for(self.hello, 60)
        if self.member:
            self.synced = asyncio.get_running_loop().create_future()
            self.transport.send(WSMsgType.TEXT, orjson.dumps({"type": "sync", "rooms": {}}))
            await asyncio.wait_for(self.synced, 60)

    def frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message.new" and self.member:
            self.receive(frame)
        elif kind == "hello" and self.hello is not None and not self.hello.done():
            self.hello.set_result(None)
        elif kind == "synced" and self.synced is not None and not self.synced.done():
            self.synced.set_result(None)
        elif kind == "ack":
            self.acks += 1
            key = str(frame.get("client_msg_id"))
            self.acked_at[key] = time.time()
            self._answered(key)
        elif kind == "error":
            self.errors[str(frame.get("code"))] += 1
            self._answered(str(frame.get("ref")))

    def receive(self, frame: dict[str, Any]) -> None:
        """A message of the room arrived on this member's connection: count it."""
        try:
            round_id, n, _sent = parse_body(frame["message"]["body"])
        except (KeyError, TypeError, ValueError, AttributeError):
            self.errors["unreadable frame"] += 1
            return
        if round_id != self.round:
            self.late += 1
            return
        if self.tally.record(n):
            key = (self.target.room, n)
            self.latest[key] = max(time.time(), self.latest.get(key, 0.0))

    def start_round(self, round_id: int) -> None:
        """Count this round's messages afresh (a member sender)."""
        self.round = round_id
        self.tally = Tally()
        self.latest = {}
        self.late = 0

    def _answered(self, key: str) -> None:
        self.awaiting.discard(key)
        while self.waiting and len(self.awaiting) < INFLIGHT:
            key, payload = self.waiting.popleft()
            self.awaiting.add(key)
            self.transport.send(WSMsgType.TEXT, payload)

    def send(self, round_id: int, n: int, sent: float) -> None:
        text = body(round_id, n, sent)
        if self.system.dialect == "sphere":
            # Pipelined: the next send never waits for this one's ack (matched by its id).
            key = f"{round_id}-{n}"
            payload = orjson.dumps(
                {
                    "type": "message.send",
                    "room": self.target.room,
                    "client_msg_id": key,
                    "ref": key,
                    "body": text,
                }
            )
            if self.waiting or len(self.awaiting) >= INFLIGHT:
                self.waiting.append((key, payload))
                self.held += 1
                return
            self.awaiting.add(key)
            self.transport.send(WSMsgType.TEXT, payload)
        else:
            self.transport.send(WSMsgType.TEXT, orjson.dumps({"message": text}))

    def new_round(self) -> tuple[int, int]:
        """Forget an earlier round's sends: (never answered, never sent). A system that has
        settled has answered everything it received; what it never got was lost then."""
        stale = (len(self.awaiting), len(self.waiting))
        self.awaiting.clear()
        self.waiting.clear()
        self.held = 0
        return stale

    def ping(self) -> None:
        if self.transport is not None:
            self.transport.send_ping()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.disconnect()


class Session:
    """A system with a population connected: run rounds, then close."""

    def __init__(
        self,
        system: System,
        *,
        rooms: int,
        members: int,
        tickets: int = 1,
        processes: int = 2,
        dms: bool = False,
        show: bool = True,
    ) -> None:
        self.system = system
        self.rooms, self.members, self.tickets = rooms, members, tickets
        self.dms = dms
        self.processes = processes
        self.show = show
        self.fleets: list[FleetHandle] = []
        self.senders: list[Sender] = []
        self.idle_kib: float | None = None
        self.connect_ms: float | None = None
        self.pinger: asyncio.Task[None] | None = None

    def status(self, text: str, *, final: bool = False) -> None:
        if not self.show:
            return
        if sys.stderr.isatty():
            sys.stderr.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    async def open(self) -> None:
        label = f"{self.system.name}: {self.rooms} x {self.members}" + (" DMs" if self.dms else "")
        self.status(f"{label}: creating rooms and members")
        population = await asyncio.to_thread(
            self.system.populate, self.rooms, self.members, self.tickets, dms=self.dms
        )
        self.population = population
        targets = [t for members in population.members for t in members]
        await asyncio.sleep(0.5)
        rss_before = rss_bytes(self.system.gateway_pids())
        connect_cpu = cpu_seconds(self.system.server_pids())
        self.fleets = start_fleet(self.system.dialect, targets, self.processes)
        started = time.monotonic()
        ready = failed = 0
        errors: dict[str, int] = {}
        pending = list(self.fleets)
        while pending:
            for handle in list(pending):
                answer = await asyncio.to_thread(_poll, handle)
                if answer is not None:
                    pending.remove(handle)
                    ready += answer[1]
                    failed += answer[2]
                    for name, count in answer[3].items():
                        errors[name] = errors.get(name, 0) + count
            self.status(f"{label}: {ready} of {len(targets)} connected")
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise RuntimeError(f"{label}: the fleet did not connect in time")
        if failed:
            raise RuntimeError(f"{label}: {failed} connections failed ({errors})")
        # Server CPU per connection opened (handshake, hello, registry; Sphere: the ticket too).
        spent = cpu_spent(connect_cpu, cpu_seconds(self.system.server_pids()))
        self.connect_ms = spent * 1000 / max(1, len(targets))
        await asyncio.sleep(2.0)  # idle: what the connections cost at rest
        rss_after = rss_bytes(self.system.gateway_pids())
        self.idle_kib = (rss_after - rss_before) / 1024 / max(1, len(targets))
        self.senders = [
            Sender(self.system, t, member=population.sender_is_member) for t in population.senders
        ]
        gate = asyncio.Semaphore(CONNECT_AT_ONCE)

        async def open_sender(sender: Sender) -> None:
            # A few at a time, as the fleet opens its own (a DM population has a thousand), and
            # again with a spare ticket when an opening fails.
            async with gate:
                for attempt in itertools.count(1):
                    try:
                        await sender.open()
                        return
                    except Exception:
                        sender.close()
                        spare = self.system.dialect != "sphere" or sender.target.tickets
                        if attempt >= 3 or not spare:
                            raise
                        await asyncio.sleep(0.5 * attempt)

        await asyncio.gather(*(open_sender(s) for s in self.senders))
        self.pinger = asyncio.ensure_future(self._ping())
        self.status(
            f"{label}: {len(targets)} connected in {time.monotonic() - started:.1f} s, "
            f"{self.idle_kib:.1f} KiB each at rest",
            final=True,
        )

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(20)
            for sender in self.senders:
                sender.ping()

    def progress(self) -> int:
        counted = sum(s.tally.received for s in self.senders if s.member)
        return counted + sum(h.progress.value for h in self.fleets)

    async def run(
        self,
        scenario: str,
        schedule: list[tuple[float, int]],
        *,
        offered: float,
        drain_s: float = 15.0,
        storm: float = 0.0,
        profile: Path | None = None,
        profile_tag: str = "",
    ) -> Round:
        """Send on the schedule (offsets in seconds, room indexes), wait for the drain, and
        return the round's figures. With ``profile``, py-spy samples every Python server
        process during the send window into ``<profile>/<tag>-<role>-<pid>.txt`` (the tag is
        the scenario unless given; collapsed stacks, for ``bench.profile``)."""
        round_id = next(round_ids)
        await self._settle()
        stale = [sender.new_round() for sender in self.senders]
        for sender in self.senders:
            sender.start_round(round_id)
        for handle in self.fleets:
            handle.commands.put(("round", round_id))
        await asyncio.sleep(0.3)  # the fleets reset their tallies
        per_room = Counter(room for _, room in schedule)
        counting = self.population.sender_is_member  # the sender is one of the members
        expected = sum(
            count * (len(self.population.members[r]) + counting) for r, count in per_room.items()
        )
        label = f"{self.system.name} {scenario}"
        if storm:
            for handle in self.fleets:
                handle.commands.put(("storm", storm))
        spies = self._spy(profile, profile_tag or scenario, schedule[-1][0] + 2) if profile else []
        pids = self.system.server_pids()
        cpu_before = cpu_seconds(pids)
        loadgen_before = cpu_now()
        sent_at: dict[tuple[int, int], float] = {}
        counters = [0] * len(self.senders)
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        first = time.time()
        last_shown = 0.0
        for offset, room in schedule:
            delay = start + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            n = counters[room]
            counters[room] += 1
            now = time.time()
            sent_at[(self.population.rooms[room], n)] = now
            self.senders[room].send(round_id, n, now)
            if now - last_shown > 0.25:
                last_shown = now
                self.status(f"{label}: sent {len(sent_at)}/{len(schedule)}, "
                            f"delivered {self.progress()}/{expected}")  # fmt: skip
        deadline = time.monotonic() + drain_s
        while self.progress() < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            self.status(f"{label}: sent {len(sent_at)}, delivered {self.progress()}/{expected}")
        if storm:
            for handle in self.fleets:
                handle.commands.put(("storm", 0.0))
        for spy in spies:
            await asyncio.to_thread(spy.wait, 60)
        cpu_after = cpu_seconds(self.system.server_pids() + pids)
        server_cpu = cpu_spent(cpu_before, cpu_after)
        by_role = cpu_by_role(cpu_before, cpu_after, self.system.roles())
        loadgen = cpu_now() - loadgen_before
        sent = {self.population.rooms[r]: c for r, c in enumerate(counters) if c}
        verdict, parts, notes = Verdict(), [], Counter[str]()
        closes: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        for handle in self.fleets:
            handle.commands.put(("collect", sent))
        for handle in self.fleets:
            kind, part_verdict, latest, cpu, extra = await asyncio.to_thread(
                handle.results.get, True, 120
            )
            assert kind == "round", kind
            verdict.merge(part_verdict)
            parts.append(latest)
            loadgen += cpu
            notes.update({k: extra[k] for k in ("late", "reopened", "resyncs")})
            closes.update({str(k): v for k, v in extra["closes"].items()})
            errors.update(extra["errors"])
        for sender in self.senders:
            errors.update({f"sender {k}": v for k, v in sender.errors.items()})
        if counting:
            for room, sender in enumerate(self.senders):
                verdict.add(sender.tally, counters[room])
                parts.append(sender.latest)
                notes["late"] += sender.late
        latest = merge_latest(parts)
        delays = latencies(sent_at, latest)
        sender_of = dict(zip(self.population.rooms, self.senders, strict=True))
        window: dict[str, int] = {}
        if self.system.dialect == "sphere":
            window = {
                "sends_held_for_window": sum(s.held for s in self.senders),
                "earlier_sends_unanswered": sum(a for a, _ in stale),
                "earlier_sends_unsent": sum(w for _, w in stale),
            }
        acked = [
            sender_of[room].acked_at[f"{round_id}-{n}"] - at
            for (room, n), at in sent_at.items()
            if f"{round_id}-{n}" in sender_of[room].acked_at
        ]
        ack_ms: dict[str, float] = {}
        if acked:
            ack_ms = {
                "ack_p50_ms": round(percentile(acked, 50) * 1000, 1),
                "ack_p99_ms": round(percentile(acked, 99) * 1000, 1),
            }
        last_arrival = max(latest.values(), default=first)
        result = Round(
            scenario=scenario,
            system=self.system.name,
            rooms=self.rooms,
            members=self.members,
            offered=offered,
            sent=len(sent_at),
            expected=expected,
            delivered=verdict.received,
            seconds=max(1e-6, last_arrival - first),
            server_cpu=server_cpu,
            loadgen_cpu=loadgen,
            p50_ms=percentile(delays, 50) * 1000,
            p99_ms=percentile(delays, 99) * 1000,
            max_ms=max(delays, default=math.nan) * 1000,
            lost=verdict.lost,
            duplicated=verdict.duplicated,
            disordered=verdict.disordered,
            idle_kib_per_connection=self.idle_kib,
            notes={
                **notes,
                **ack_ms,
                **window,
                "connect_cpu_ms": round(self.connect_ms or 0.0, 2),
                "closes": dict(closes),
                "errors": dict(errors),
                "server_cpu_by_process": by_role,
            },
        )
        self.status(
            f"{label}: {result.delivered}/{expected} delivered, "
            f"{result.per_cpu_second:,.0f} per server-CPU-s, p99 {result.p99_ms:,.0f} ms, "
            f"lost {result.lost}, dup {result.duplicated}, disorder {result.disordered}",
            final=True,
        )
        return result

    async def idle(self, scenario: str, seconds: float) -> Round:
        """What the system costs at rest with this session's connections open: once it has
        settled, each process's CPU over ``seconds`` without traffic (the clients' and the
        server's heartbeats go on, as they would). A round that sends nothing; the figures per
        process, in milliseconds of CPU per second, are in its notes."""
        await self._settle()
        label = f"{self.system.name} {scenario}"
        self.status(f"{label}: {seconds:.0f} s at rest")
        roles = self.system.roles()
        pids = self.system.server_pids()
        before = cpu_seconds_fine(pids)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        after = cpu_seconds_fine(pids)
        window = time.monotonic() - started
        costs = idle_costs(before, after, window, roles)
        per_role: dict[str, list[float]] = {}
        for role, _, ms in costs:
            per_role.setdefault(role, []).append(ms)
        self.status(
            f"{label}: " + ", ".join(f"{role} {max(ms):.2f} ms/s" for role, ms in per_role.items()),
            final=True,
        )
        return Round(
            scenario=scenario,
            system=self.system.name,
            rooms=self.rooms,
            members=self.members,
            offered=0.0,
            sent=0,
            expected=0,
            delivered=0,
            seconds=window,
            server_cpu=sum(ms for _, _, ms in costs) * window / 1000,
            loadgen_cpu=0.0,
            p50_ms=math.nan,
            p99_ms=math.nan,
            max_ms=math.nan,
            lost=0,
            duplicated=0,
            disordered=0,
            idle_kib_per_connection=self.idle_kib,
            notes={
                "idle_ms_per_s": [
                    {"role": role, "pid": pid, "ms_per_s": round(ms, 3)} for role, pid, ms in costs
                ]
            },
        )

    async def _settle(self, quiet: float = 0.1, within: float = 90.0) -> None:
        """Wait until the system is idle (under ``quiet`` of a core for a second): a system
        still working off an earlier round's backlog (the tutorial's channel layer keeps
        messages for 60 s) starts the next round as fresh as the others."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            pids = self.system.server_pids()
            before = cpu_seconds(pids)
            await asyncio.sleep(1.0)
            if cpu_spent(before, cpu_seconds(pids)) < quiet:
                return

    def _spy(self, out: Path, scenario: str, seconds: float) -> list[subprocess.Popen[bytes]]:
        out.mkdir(parents=True, exist_ok=True)
        spies = []
        for pid, role in self.system.roles().items():
            if role in {"postgres", "redis"}:
                continue
            target = out / f"{scenario}-{role}-{pid}.txt"
            spies.append(
                subprocess.Popen(  # noqa: S603 - py-spy on our own server process
                    [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                     "--duration", str(max(1, round(seconds))), "--rate", "250", "--format",
                     "raw", "--nonblocking", "--output", str(target)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        return spies

    async def close(self) -> None:
        if self.pinger is not None:
            self.pinger.cancel()
        for sender in self.senders:
            sender.close()
        for handle in self.fleets:
            handle.commands.put(("quit", None))
        for handle in self.fleets:
            await asyncio.to_thread(handle.process.join, 30)
            if handle.process.is_alive():
                handle.process.kill()
        await asyncio.sleep(1.0)  # the server lets the closed connections go


def _poll(handle: FleetHandle) -> tuple[Any, ...] | None:
    try:
        answer = handle.results.get(timeout=0.5)
    except Exception:
        if not handle.process.is_alive():
            raise RuntimeError("a fleet process died while connecting") from None
        return None
    if answer[0] != "ready":
        raise RuntimeError(f"unexpected fleet answer {answer[0]}")
    return tuple(answer)
