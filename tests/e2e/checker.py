"""A delivery checker: connections that record every room event they receive, senders, and a
verdict of lost, duplicated and out-of-order events per connection.

A connection that is closed (4429, 1013, a dropped socket, a gateway restart) or told
``room.resync`` reopens with ``sync`` from the last seq it holds, as docs/protocol.md asks of a
client; the verdict then covers everything it received over all its sockets. A send waits for
its ``ack`` and is repeated with the same ``client_msg_id`` when the socket drops or the server
answers with an error worth retrying (``internal`` while a service restarts, ``rate_limited``),
so every send lands exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import websockets

from tests.e2e.conftest import Server

OPEN_TIMEOUT = 10
ACK_TIMEOUT = 10.0
SEND_WITHIN = 90.0
RETRIED_ERRORS = {"internal", "rate_limited"}
ROOM_EVENTS = {
    "message.new",
    "message.edited",
    "message.deleted",
    "reaction.added",
    "reaction.removed",
    "thread.updated",  # a room event of its own, right after its reply (docs/threads.md)
}


@dataclass
class Verdict:
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    foreign: int = 0  # events of rooms the connection could not read at that time
    details: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.foreign)

    def add(self, other: Verdict) -> None:
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.out_of_order += other.out_of_order
        self.foreign += other.foreign
        self.details += other.details


class SendFailed(AssertionError):
    """A message the server never acknowledged, or refused for good."""


class Receiver:
    """One user's connection through one gateway, reopened with ``sync`` when it drops."""

    def __init__(self, server: Server, user_id: int, token: str, name: str = "") -> None:
        self.server, self.user_id, self.token = server, user_id, token
        self.name = name or f"user {user_id}"
        self.seqs: dict[int, list[int]] = defaultdict(list)
        self.readable: set[int] = set()
        self.removed: dict[int, int] = {}  # room -> events received after room.removed
        self.removed_at: dict[int, float] = {}  # room -> when room.removed arrived (monotonic)
        self.reasons: dict[int, str] = {}  # room -> the reason of its first room.removed
        self.after_removed: dict[int, list[str]] = defaultdict(list)  # frames after room.removed
        self.touched: dict[int, list[str]] = defaultdict(list)  # every frame naming the room
        self.infos: dict[int, dict[str, Any]] = {}  # room -> its last room.added/updated info
        self.acks: dict[str, int] = {}
        self.message_ids: dict[str, int] = {}  # client_msg_id -> the acked message's id
        self.reply_seqs: dict[int, dict[int, int]] = defaultdict(dict)  # room -> seq -> root
        # root -> (seq, reply_count) of each thread.updated received for it, in arrival order
        self.thread_updates: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.errors: list[dict[str, Any]] = []
        self.closes: list[int | None] = []  # close codes of the sockets that ended
        self.resyncs = 0
        self.reopens = 0
        self.ws: Any = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.live = asyncio.Event()
        self.connected = asyncio.Event()
        self.answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.live.wait(), 30)

    async def _open(self) -> None:
        ticket = await asyncio.to_thread(self.server.ticket, self.token)
        self.ws = await websockets.connect(
            f"{self.server.ws}?ticket={ticket}", max_size=2**22, open_timeout=OPEN_TIMEOUT
        )
        hello = json.loads(await asyncio.wait_for(self.ws.recv(), OPEN_TIMEOUT))
        assert hello["type"] == "hello", hello
        self.readable = {room["id"] for room in hello["rooms"]}
        for room in hello["rooms"]:
            self.touched[room["id"]].append("hello")
        cursors = {str(r): (self.seqs[r][-1] if self.seqs[r] else 0) for r in self.readable}
        await self.ws.send(json.dumps({"type": "sync", "rooms": cursors, "ref": "sync"}))
        self.connected.set()

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self._open()
                async for raw in self.ws:
                    self._record(json.loads(raw))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: S110 - a dropped or refused socket: reopen below
                pass
            self.connected.clear()
            if self.ws is not None:
                self.closes.append(getattr(self.ws, "close_code", None))
                self.ws = None
            for answer in self.answers.values():
                if not answer.done():
                    answer.set_exception(ConnectionError("the socket dropped"))
            if self.stopping:
                return
            self.reopens += 1
            await asyncio.sleep(0.2)

    def _record(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        named = frame.get("room")
        if kind == "room.added":
            named = frame["info"]["id"]
        if isinstance(named, int) and not isinstance(named, bool):
            self.touched[named].append(str(kind))
            if named in self.removed and named not in self.readable and kind != "room.added":
                self.after_removed[named].append(str(kind))
        if kind == "synced":
            self.live.set()
        elif kind in ("ack", "error"):
            if kind == "error":
                self.errors.append(frame)
            answer = self.answers.get(frame.get("ref") or "")
            if answer is not None and not answer.done():
                answer.set_result(frame)
        elif kind == "room.added":
            self.readable.add(frame["info"]["id"])
            self.infos[frame["info"]["id"]] = frame["info"]
        elif kind == "room.updated":
            self.infos[frame["room"]] = frame["info"]
        elif kind == "room.removed":
            self.readable.discard(frame["room"])
            self.reasons.setdefault(frame["room"], str(frame.get("reason")))
            self.removed.setdefault(frame["room"], 0)
            self.removed_at.setdefault(frame["room"], time.monotonic())
        elif kind == "room.resync":
            self.resyncs += 1
            task = asyncio.ensure_future(self._resync(frame["room"]))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)
        elif kind in ROOM_EVENTS:
            room = frame["room"]
            if room in self.removed and room not in self.readable:
                self.removed[room] += 1
            self.seqs[room].append(frame["seq"])
            if kind == "message.new" and frame["message"].get("thread_root") is not None:
                self.reply_seqs[room][frame["seq"]] = frame["message"]["thread_root"]
            elif kind == "thread.updated":
                self.thread_updates[frame["message_id"]].append(
                    (frame["seq"], frame["thread"]["reply_count"])
                )

    async def _resync(self, room: int) -> None:
        last = self.seqs[room][-1] if self.seqs[room] else 0
        with contextlib.suppress(Exception):  # the socket dropped: its reopen syncs anyway
            await self.ws.send(
                json.dumps({"type": "sync", "rooms": {str(room): last}, "ref": "rs"})
            )

    async def send(
        self, room: int, client_msg_id: str, body: str, thread_root: int | None = None
    ) -> int:
        """Send a message (a reply in ``thread_root``'s thread when given) and wait for its
        ``ack``; returns its seq."""
        deadline = time.monotonic() + SEND_WITHIN
        fields: dict[str, Any] = {
            "type": "message.send",
            "room": room,
            "client_msg_id": client_msg_id,
            "body": body,
            "ref": client_msg_id,
        }
        if thread_root is not None:
            fields["thread_root"] = thread_root
        frame = json.dumps(fields)
        while True:
            if time.monotonic() > deadline:
                raise SendFailed(f"{self.name}: {client_msg_id} was never acknowledged")
            answer: dict[str, Any] | None = None
            future = asyncio.get_running_loop().create_future()
            self.answers[client_msg_id] = future
            try:
                await asyncio.wait_for(self.connected.wait(), ACK_TIMEOUT)
                await self.ws.send(frame)
                answer = await asyncio.wait_for(future, ACK_TIMEOUT)
            except Exception:  # noqa: S110 - a dropped socket or no answer: send again
                pass
            finally:
                self.answers.pop(client_msg_id, None)
            if answer is None:
                await asyncio.sleep(0.1)
            elif answer["type"] == "ack":
                seq = int(answer["seq"])
                self.acks[client_msg_id] = seq
                if answer.get("message_id") is not None:
                    self.message_ids[client_msg_id] = int(answer["message_id"])
                return seq
            elif answer.get("code") in RETRIED_ERRORS:
                await asyncio.sleep(min(float(answer.get("retry_after") or 0.2), 1.0))
            else:
                raise SendFailed(f"{self.name}: {client_msg_id} refused: {answer}")

    def drop(self) -> None:
        """Cut the socket without a closing handshake, as a lost network would."""
        ws = self.ws
        if ws is not None and self.connected.is_set():
            ws.transport.abort()

    async def stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):  # cancelled on purpose
                await self.task
        for task in list(self.pending):
            task.cancel()

    def verdict(self, heads: dict[int, int], rooms: set[int] | None = None) -> Verdict:
        """Compare what arrived with each room's head (``rooms``: those the connection must
        have read throughout; default all in ``heads``)."""
        verdict = Verdict()
        for room in rooms if rooms is not None else heads:
            got = self.seqs.get(room, [])
            expected = set(range(1, heads[room] + 1))
            seen = set(got)
            lost = len(expected - seen)
            duplicated = len(got) - len(seen)
            disorder = sum(1 for a, b in itertools.pairwise(got) if b <= a)
            verdict.lost += lost
            verdict.duplicated += duplicated
            verdict.out_of_order += disorder
            if lost or duplicated or disorder:
                verdict.details.append(
                    f"{self.name} room {room}: lost {lost}, duplicated {duplicated}, "
                    f"out of order {disorder}"
                )
        return verdict

    def verdict_removed(self, room: int) -> Verdict:
        """A room the connection lost on the way: what arrived is 1, 2, ..., k with no gap,
        repeat or disorder, and nothing of the room arrived after its ``room.removed``."""
        verdict = Verdict()
        got = self.seqs.get(room, [])
        prefix = list(range(1, len(got) + 1))
        if got != prefix:
            seen = set(got)
            verdict.duplicated += len(got) - len(seen)
            verdict.out_of_order += sum(1 for a, b in itertools.pairwise(got) if b <= a)
            verdict.lost += len(set(range(1, max(seen) + 1)) - seen)
            verdict.details.append(f"{self.name} room {room}: not a prefix: {got[:40]}")
        if room not in self.removed:
            verdict.foreign += 1
            verdict.details.append(f"{self.name} room {room}: no room.removed")
        elif self.removed[room]:
            verdict.foreign += self.removed[room]
            verdict.details.append(
                f"{self.name} room {room}: {self.removed[room]} events after room.removed"
            )
        return verdict

    def verdict_thread(self, room: int, root: int, replies: int) -> Verdict:
        """A thread's events as this connection got them (docs/threads.md): each
        ``thread.updated`` of the root arrived right after its reply's ``message.new`` (the
        seq before its own, naming the root as ``thread_root``), one per reply, their
        ``reply_count`` going 1, 2, ..., and the last one carrying ``replies``, the number of
        replies acknowledged to the senders. Lost, repeated and disordered room events are
        the room's verdict; this one is about what the thread's events say."""
        verdict = Verdict()
        got = self.seqs.get(room, [])
        position = {seq: index for index, seq in reversed(list(enumerate(got)))}
        updates = self.thread_updates.get(root, [])
        for seq, _ in updates:
            index = position.get(seq, 0)
            if (
                index == 0
                or got[index - 1] != seq - 1
                or self.reply_seqs[room].get(seq - 1) != root
            ):
                verdict.out_of_order += 1
                verdict.details.append(
                    f"{self.name} room {room}: thread.updated {seq} of root {root} does not "
                    f"follow its reply (before it: {got[max(index - 3, 0) : index]})"
                )
        counts = [count for _, count in updates]
        if counts != list(range(1, replies + 1)):
            missing = max(replies - len(counts), 0)
            verdict.lost += missing
            verdict.out_of_order += int(not missing)
            verdict.details.append(
                f"{self.name} room {room}: root {root} has {replies} replies, the thread's "
                f"reply_count went {counts[:10]}...{counts[-3:]} ({len(counts)} updates)"
            )
        got_replies = sum(1 for r in self.reply_seqs[room].values() if r == root)
        if got_replies != replies:
            verdict.lost += max(replies - got_replies, 0)
            verdict.duplicated += max(got_replies - replies, 0)
            verdict.details.append(
                f"{self.name} room {room}: {got_replies} replies of root {root} of {replies}"
            )
        return verdict

    def verdict_outsider(self, room: int) -> Verdict:
        """A room the connection's user never could read (a DM of others): nothing of it
        arrived, neither in ``hello`` nor as any frame."""
        verdict = Verdict()
        frames = self.touched.get(room, [])
        if frames:
            verdict.foreign += len(frames)
            kinds = sorted(set(frames))
            verdict.details.append(f"{self.name} room {room}: {len(frames)} frames of {kinds}")
        return verdict


async def wait_for_heads(
    receivers: list[Receiver], heads: dict[int, int], within: float = 60.0
) -> bool:
    """Wait until every receiver holds each room up to its head, or the time is up (the
    verdict then tells what is missing). True when they all did."""
    deadline = time.monotonic() + within
    while True:
        if all(
            len(set(r.seqs.get(room, ()))) >= head
            for r in receivers
            for room, head in heads.items()
        ):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


def combined(receivers: list[Receiver], heads: dict[int, int]) -> Verdict:
    total = Verdict()
    for receiver in receivers:
        total.add(receiver.verdict(heads))
    return total


class StalledClient:
    """A WebSocket client that, once its ``sync`` is sent, reads nothing: a tiny receive
    buffer fills and the server's outbound buffer for it grows until the server gives up."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def open(cls, server: Server, token: str) -> StalledClient:
        ticket = server.ticket(token)
        host, port = server.base.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(OPEN_TIMEOUT)
        sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws/v1/?ticket={ticket} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                raise ConnectionError("the handshake was not answered")
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock)

    def send_text(self, text: str) -> None:
        """One masked text frame (a client must mask what it sends)."""
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def sync(self) -> None:
        self.send_text('{"type":"sync","rooms":{}}')

    def ending(self, within: float) -> int | None:
        """Read everything the server queued, up to the end of the connection: the code of
        its close frame, 0 when the socket ended without one (a server that gives up on the
        closing handshake resets the connection, dropping the frames still queued for it),
        or None when it was still open after ``within`` seconds."""
        data = bytearray()
        at = 0
        deadline = time.monotonic() + within
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return 0
            if not chunk:
                return 0
            data += chunk
            while True:  # whole frames from ``at`` on; a server's frames are not masked
                if len(data) - at < 2:
                    break
                opcode, size, start = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
                if size == 126:
                    size, start = int.from_bytes(data[at + 2 : at + 4], "big"), at + 4
                elif size == 127:
                    size, start = int.from_bytes(data[at + 2 : at + 10], "big"), at + 10
                if len(data) < start + size:
                    break
                if opcode == 0x8:
                    return int.from_bytes(data[start : start + 2], "big")
                at = start + size
            if at > 1 << 20:
                del data[:at]
                at = 0
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
