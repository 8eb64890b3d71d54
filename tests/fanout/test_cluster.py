"""The fan-out tier on a real Redis Cluster of three masters started for the test: partition
streams, leases, the gateway registry and inboxes, scripts, routed seqs, the sweep and link
reach, each key routed to its slot. Moving off one Redis is configuration
(``SPHERE_FANOUT_REDIS_URL``, ``SPHERE_FANOUT_REDIS_CLUSTER``), not code."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fanout.hooks import hooks
from fanout.items import AccessItem, RoomItem, UsersItem
from fanout.redis import keys as redis_keys

pytestmark = pytest.mark.services

NODES = 3
QUIET_ROOM = 4 * 20 + 1


def _free_pair() -> int:
    """A port whose cluster bus port (port + 10000) is free too."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.fail("redis-server and redis-cli are needed (Debian: redis-server, redis-tools)")
    var = tmp_path_factory.mktemp("cluster")
    ports = [_free_pair() for _ in range(NODES)]
    processes = []
    try:
        for port in ports:
            argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf", "--dir", str(var)]  # fmt: skip
            log = (var / f"{port}.log").open("wb")
            processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
        _wait(lambda: all(_ping(cli, p) for p in ports), "the nodes to answer")
        subprocess.run(  # noqa: S603
            [cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        _wait(lambda: all(_state_ok(cli, p) for p in ports), "the cluster to be ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


def _ping(cli: str, port: int) -> bool:
    done = subprocess.run(  # noqa: S603
        [cli, "-p", str(port), "ping"], capture_output=True, text=True, timeout=5, check=False
    )
    return "PONG" in done.stdout


def _state_ok(cli: str, port: int) -> bool:
    done = subprocess.run(  # noqa: S603
        [cli, "-p", str(port), "cluster", "info"],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return "cluster_state:ok" in done.stdout


def _wait(check: Any, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def on_cluster(settings: Any, cluster_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.SCALED = True
    settings.FANOUT_REDIS_URL = cluster_url
    settings.FANOUT_REDIS_CLUSTER = True
    settings.FANOUT_PREFIX = f"cluster-{secrets.token_hex(3)}"
    settings.FANOUT_PARTITIONS = 4
    settings.FANOUT_LEASE_MS = 1000
    monkeypatch.setattr(
        redis_keys, "_sync", None
    )  # the publisher's client, made anew for the cluster
    readers: dict[int, frozenset[int]] = {}
    monkeypatch.setattr(hooks.store, "readers", lambda room: (readers.get(room, frozenset()), 0))
    # One room with events the tier never saw, all older than the sweep's window.
    monkeypatch.setattr(hooks.store, "heads", lambda: [(QUIET_ROOM, 7)])
    monkeypatch.setattr(hooks.store, "events_after", lambda *args: [])
    yield readers
    redis_keys._sync = None


class Recorder:
    """A connection as the gateway sees it, recording what reaches it."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.got: list[tuple[Any, ...]] = []

    def deliver_event(self, room_id: int, seq: int, frame: bytes) -> bool:
        self.got.append(("event", room_id, seq, frame))
        return True

    def deliver_frame(self, frame: bytes) -> None:
        self.got.append(("frame", frame))

    def revoke_room(self, room_id: int, frame: bytes, version: int = 0) -> None:
        self.got.append(("revoke", room_id, frame, version))

    def grant_room(self, room_id: int, head_seq: int, frame: bytes, version: int = 0) -> None:
        self.got.append(("grant", room_id, head_seq, frame, version))

    def recover(self) -> None:
        self.got.append(("recover",))


async def _until(check: Any, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.05)


async def test_the_tier_runs_on_a_redis_cluster(on_cluster: dict[int, frozenset[int]]) -> None:
    from fanout.connections import LocalConnections
    from fanout.redis.link import RedisLink
    from fanout.redis.publisher import publish
    from fanout.redis.worker import Worker
    from reach.store import reach_of

    readers = on_cluster
    gateway = LocalConnections(asyncio.get_running_loop(), RedisLink)
    assert gateway.link is not None
    alice, bob = Recorder(101), Recorder(102)
    worker = Worker(worker_id="cluster-worker")
    task = asyncio.create_task(worker.run())
    try:
        assert await gateway.attach(alice) is True  # registered through a script on its slot
        assert await gateway.attach(bob) is True
        room = 4 * 3 + 2  # partition 2
        readers[room] = frozenset({101, 102, 103})
        await _until(lambda: len(worker.held) == 4, "the worker holding every partition")
        url = "https://cluster.example/a"
        items = [
            RoomItem(room, 1, b'{"seq":1}', None, 5, (url,), access_version=1),
            RoomItem(room, 2, b'{"seq":2}', None, 5, (url,), access_version=1),
            AccessItem(room, (102,), (b"removed",), False, 2, 2),
            UsersItem((101, 102), b"presence", 101),
        ]
        for item in items:
            assert await asyncio.to_thread(publish, item)
        await _until(lambda: len(alice.got) >= 3 and len(bob.got) >= 4, "every item at the gateway")
        events = [g for g in alice.got if g[0] == "event"]
        assert [(e[1], e[2]) for e in events] == [(room, 1), (room, 2)]
        assert ("revoke", room, b"removed", 2) in bob.got
        assert ("frame", b"presence") in alice.got
        assert ("frame", b"presence") in bob.got
        reach, shares = await asyncio.to_thread(reach_of, community_id=5, url=url)
        assert (reach, shares) == (3, 2)
        # The routed seqs: recorded with the read's acknowledgement, and by the sweep for a
        # room it had no record of.
        client = redis_keys.sync_client()
        keys = redis_keys.Keys()
        await _until(lambda: client.hget(keys.routed(2), str(room)) == b"2", "routed seqs")
        await _until(lambda: client.hget(keys.routed(1), str(QUIET_ROOM)) == b"7", "the sweep")
        # The last socket of a user closing unregisters the user (a script on its slot); the
        # user counts as online while the offline is pending, until it is taken.
        token = await gateway.leave(alice)
        assert token is not None
        assert await gateway.online([101, 102]) == {101, 102}
        assert await gateway.offline_due(101, token) is True
        assert await gateway.offline_due(101, token) is False  # announced once
        assert await gateway.online([101, 102]) == {102}
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)
        gateway.stop()
