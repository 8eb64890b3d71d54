"""The systems under test, each started as real server processes on loopback ports:

- ``sphere``: the scaled mode (PostgreSQL, Redis, daphne gateways, ``fanout_worker``
  processes), in a database and under a Redis key prefix of its own;
- ``sphere-embedded``: the embedded mode (one daphne process, SQLite in the system's scratch
  folder, the fan-out inside the process), with the same settings otherwise;
- ``tutorial``: the Channels tutorial chat (``bench/baseline/tutorial``) under daphne with
  channels-redis' default layer;
- ``bare``: a bare ``websockets`` broadcast server, the CPython ceiling.

A system creates rooms with members (``populate``; Sphere also two-person DMs) and says which
processes' CPU counts (``server_pids``: every server process, Redis and PostgreSQL included where
the system uses them) and where its connections live (``gateway_pids``, for memory per
connection).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.fleet import Target

INFLIGHT = 64  # Sphere: sends awaiting their answer per connection (SPHERE_WS_MAX_INFLIGHT)

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
TUTORIAL_REDIS = os.environ.get("BENCH_TUTORIAL_REDIS", "redis://127.0.0.1:6379/13")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pids_named(name: str) -> list[int]:
    """Processes whose command name is exactly ``name`` (PostgreSQL's backends included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


def wait_http(url: str, process: subprocess.Popen[bytes], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status < 500:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)


def wait_port(port: int, process: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {port}") from None
            time.sleep(0.1)


@dataclass
class Population:
    """Rooms made for a scenario: per room its id, its members' connections and its sender.
    With ``sender_is_member`` (a DM) the sender's connection is a member's own: it receives
    the room's messages and counts with the others."""

    rooms: list[int]
    members: list[list[Target]]
    senders: list[Target]
    sender_is_member: bool = False


_running: list[System] = []


def stop_all() -> None:
    """Stop every system still running (the harness leaving early: SIGTERM, an error)."""
    for system in list(_running):
        system.stop()


class System:
    name = ""
    label = ""
    dialect = "relay"

    def __init__(self, var: Path) -> None:
        self.var = var / self.name
        self.var.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []
        _running.append(self)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.var / f"{name}.log").open("ab")
        self.logs.append(log)
        process = subprocess.Popen(  # noqa: S603 - our own commands
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes.append(process)
        return process

    def start(self) -> None:
        raise NotImplementedError

    def populate(self, rooms: int, members: int, tickets: int, *, dms: bool = False) -> Population:
        """``rooms`` rooms of ``members`` members and a sender each; with ``dms``, two-person
        DMs (``members`` is 2: the sender and one other)."""
        raise NotImplementedError

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.poll() is None]

    def gateway_pids(self) -> list[int]:
        return self.server_pids()

    def roles(self) -> dict[int, str]:
        """What each server process is, for the CPU breakdown of a round."""
        return {pid: self.name for pid in self.server_pids()}

    def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()

    def log_tail(self, chars: int = 2000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
            for p in sorted(self.var.glob("*.log"))
        )


class Sphere(System):
    name = "sphere"
    label = "Sphere (scaled)"
    dialect = "sphere"

    def __init__(self, var: Path, *, gateways: int = 1, workers: int = 1) -> None:
        super().__init__(var)
        self.gateway_count, self.worker_count = gateways, workers
        self.database = f"sphere_bench_{os.getpid()}_{secrets.token_hex(2)}"
        self.prefix = f"bench-{secrets.token_hex(3)}"
        self.ports: list[int] = []
        self.gateways: list[subprocess.Popen[bytes]] = []
        self.tags = itertools.count()
        # Production settings (no debug), plain HTTP on loopback, and the per-user limits out
        # of the way: one sender per room sends far more than a person may.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SPHERE_") and k not in {"DATABASE_URL", "REDIS_URL"}
        }
        env |= {
            "SPHERE_SECURE": "0",
            "SPHERE_DEBUG": "0",
            "SPHERE_LOG_LEVEL": "WARNING",
            "SPHERE_RATE_MESSAGES": "100000000/min",
            "SPHERE_THROTTLE_USER": "100000000/min",
            "SPHERE_RATE_DMS": "100000000/min",
            # The protocol's window of sends awaiting their answer, stated: the senders keep to it.
            "SPHERE_WS_MAX_INFLIGHT": str(INFLIGHT),
            "SPHERE_VAR_DIR": str(self.var),
            "DJANGO_SETTINGS_MODULE": "sphere.settings",
        }
        env |= self.stores()
        self.env = env

    def stores(self) -> dict[str, str]:
        """The variables that pick the mode: PostgreSQL and Redis here."""
        return {
            "DATABASE_URL": f"{PG}/{self.database}",
            "REDIS_URL": REDIS,
            "SPHERE_FANOUT_PREFIX": self.prefix,
        }

    def start(self) -> None:
        self.create_database()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        for n in range(self.worker_count):
            self.spawn(f"worker-{n}", [sys.executable, "manage.py", "fanout_worker"], self.env)
        for n in range(self.gateway_count):
            port = free_port()
            gateway = self.spawn(
                f"gateway-{n}",
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                 "sphere.asgi:application"],
                self.env,
            )  # fmt: skip
            wait_http(f"http://127.0.0.1:{port}/healthz", gateway)
            self.ports.append(port)
            self.gateways.append(gateway)

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}"')
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def populate(self, rooms: int, members: int, tickets: int, *, dms: bool = False) -> Population:
        shape = ["--dms"] if dms else ["--members", str(members)]
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "bench.sphere_seed", "--rooms", str(rooms), *shape,
             "--tickets", str(tickets), "--tag", f"{next(self.tags)}"],
            cwd=ROOT, env=self.env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        data = json.loads(done.stdout)
        urls = [f"ws://127.0.0.1:{port}/ws/v1/" for port in self.ports]
        ids, member_targets, senders = [], [], []
        spread = itertools.count()
        for room in data["rooms"]:
            ids.append(room["id"])
            member_targets.append(
                [
                    Target(room["id"], urls[next(spread) % len(urls)], list(tickets_of))
                    for tickets_of in room["members"]
                ]
            )
            senders.append(Target(room["id"], urls[0], list(room["sender"])))
        return Population(ids, member_targets, senders, bool(data.get("sender_is_member")))

    def server_pids(self) -> list[int]:
        return super().server_pids() + pids_named("redis-server") + pids_named("postgres")

    def gateway_pids(self) -> list[int]:
        return [g.pid for g in self.gateways if g.poll() is None]

    def roles(self) -> dict[int, str]:
        roles = dict.fromkeys(pids_named("postgres"), "postgres")
        roles |= dict.fromkeys(pids_named("redis-server"), "redis")
        roles |= {p.pid: "worker" for p in self.processes if p not in self.gateways}
        roles |= dict.fromkeys(self.gateway_pids(), "gateway")
        return roles

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(REDIS)
            keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            client.close()
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


class SphereEmbedded(Sphere):
    """The embedded mode: no ``DATABASE_URL`` or ``REDIS_URL``, so one daphne process holds the
    connections and the fan-out partitions, on SQLite under ``SPHERE_VAR_DIR``."""

    name = "sphere-embedded"
    label = "Sphere (embedded)"

    def __init__(self, var: Path) -> None:
        super().__init__(var, gateways=1, workers=0)

    def stores(self) -> dict[str, str]:
        return {}  # SQLite in self.var, the in-memory channel layer, the fan-out in-process

    def create_database(self) -> None:
        for path in self.var.glob("sphere.sqlite3*"):
            path.unlink()

    def server_pids(self) -> list[int]:
        return System.server_pids(self)

    def roles(self) -> dict[int, str]:
        return dict.fromkeys(self.gateway_pids(), "server")

    def stop(self) -> None:
        System.stop(self)  # its database is a file in the scratch folder, removed with it


class Relay(System):
    """A system with no accounts: a room is a path, a member a connection to it."""

    path = "/{room}"

    def __init__(self, var: Path) -> None:
        super().__init__(var)
        self.port = 0
        self.rooms = itertools.count(1)

    def populate(self, rooms: int, members: int, tickets: int, *, dms: bool = False) -> Population:
        if dms:
            raise ValueError(f"{self.name} has no direct messages")
        base = f"ws://127.0.0.1:{self.port}"
        ids = [next(self.rooms) for _ in range(rooms)]
        return Population(
            ids,
            [[Target(r, base + self.path.format(room=r)) for _ in range(members)] for r in ids],
            [Target(r, base + self.path.format(room=r)) for r in ids],
        )


class Tutorial(Relay):
    name = "tutorial"
    label = "Channels tutorial"
    path = "/ws/chat/r{room}/"

    def start(self) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env |= {
            "DJANGO_SETTINGS_MODULE": "bench.baseline.tutorial.settings",
            "TUTORIAL_VAR_DIR": str(self.var),
            "TUTORIAL_REDIS_URL": TUTORIAL_REDIS,
        }
        daphne = self.spawn(
            "daphne",
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "bench.baseline.tutorial.asgi:application"],
            env,
        )  # fmt: skip
        wait_port(self.port, daphne)

    def server_pids(self) -> list[int]:
        return super().server_pids() + pids_named("redis-server")

    def gateway_pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.poll() is None]

    def roles(self) -> dict[int, str]:
        return dict.fromkeys(pids_named("redis-server"), "redis") | dict.fromkeys(
            self.gateway_pids(), "daphne"
        )

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(TUTORIAL_REDIS)
            keys = list(client.scan_iter(match="asgi*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            client.close()


class Bare(Relay):
    name = "bare"
    label = "bare websockets"
    path = "/r{room}"

    def start(self) -> None:
        self.port = free_port()
        process = self.spawn(
            "bare", [sys.executable, "-m", "bench.baseline.bare", "--port", str(self.port)],
            dict(os.environ),
        )  # fmt: skip
        wait_port(self.port, process)


SYSTEMS: dict[str, type[System]] = {
    "sphere": Sphere,
    "sphere-embedded": SphereEmbedded,
    "tutorial": Tutorial,
    "bare": Bare,
}


def scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="sphere-bench-"))
    return path


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (children not included)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_seconds_fine(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process to the nanosecond: the sum over its threads of the time on
    a CPU in ``/proc/<pid>/task/<tid>/schedstat`` (``/proc/<pid>/stat`` counts in ticks of
    10 ms, too coarse for a process at rest). Falls back to ticks where schedstat is missing;
    a thread that ended in between takes its time with it (fine for a window at rest)."""
    out: dict[int, float] = {}
    for pid in pids:
        total, found = 0, False
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int((task / "schedstat").read_text().split()[0])
                    found = True
        if found:
            out[pid] = total / 1e9
        else:
            out.update(cpu_seconds([pid]))
    return out


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings; a process that appeared in between counts whole."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def cpu_by_role(
    before: dict[int, float], after: dict[int, float], roles: dict[int, str]
) -> dict[str, float]:
    spent: dict[str, float] = {}
    for pid, total in after.items():
        role = roles.get(pid, "other")
        spent[role] = round(spent.get(role, 0.0) + total - before.get(pid, 0.0), 2)
    return spent
