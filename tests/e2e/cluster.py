"""Real server processes for end-to-end tests: gateways (daphne) and fan-out workers, and a
private Redis server that a test may kill and restart.

Each process runs the shipped commands with the environment a deployment would give it; the
scaled mode gets a Redis key prefix of its own, so runs sharing one Redis never meet.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import redis

from fanout.redis.keys import Keys
from tests.e2e.conftest import ROOT, Server, free_port, own_database

WORKER_STARTED = re.compile(r"fan-out worker (\S+): \d+ partitions")


def database(url: str, tag: str) -> AbstractContextManager[str]:
    """A PostgreSQL database of its own for one cluster, so that two clusters of one test run
    never share one."""
    return own_database(url, tag)


def own_redis_database(url: str, index: int = 15) -> str:
    """The same Redis server, another of its numbered databases: a test process clears its
    cache between tests with FLUSHDB on the suite's database, which would wipe a cluster's
    streams, leases and registry there in the middle of a scenario."""
    if not url:
        return url
    return urlunsplit(urlsplit(url)._replace(path=f"/{index}"))


class RedisServer:
    """A redis-server of the test's own on a free loopback port, without persistence: killing
    it loses every key, as a restart of an unpersisted Redis does."""

    def __init__(self, var: Path) -> None:
        self.var = var
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[Any] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.log is None:
            self.log = (self.var / "redis.log").open("ab")
        binary = shutil.which("redis-server") or "redis-server"
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(  # noqa: S603
            argv,
            cwd=self.var,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the server goes at once, with everything it held."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        if self.log is not None:
            self.log.close()
            self.log = None


class Cluster:
    def __init__(
        self, var: Path, database_url: str, *, redis_url: str | None = None, **extra_env: str
    ) -> None:
        self.var = var
        self.redis_url = os.environ.get("REDIS_URL", "") if redis_url is None else redis_url
        self.scaled = bool(self.redis_url)
        self.prefix = f"e2e-{secrets.token_hex(4)}"
        self.keys = Keys(self.prefix)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERE_")}
        if database_url:
            env["DATABASE_URL"] = database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env |= {
            "SPHERE_VAR_DIR": str(var),
            "SPHERE_SECURE": "0",
            "SPHERE_DEBUG": "0",
            "SPHERE_THROTTLE_USER": "100000/min",
            "SPHERE_THROTTLE_AUTH": "100000/min",
            "SPHERE_RATE_MESSAGES": "100000/min",
            "SPHERE_LOG_LEVEL": "WARNING",
            "SPHERE_FANOUT_PREFIX": self.prefix,
            "DJANGO_SETTINGS_MODULE": "sphere.settings",
        }
        env |= extra_env
        self.env = env
        self.database_url = database_url
        self.partitions = int(env.get("SPHERE_FANOUT_PARTITIONS", "8"))
        self.servers: list[Server] = []
        self.gateways: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[Any]] = []
        self.migrated = False
        self._redis: redis.Redis | None = None
        self.spawned = 0

    def start(self, *, gateways: int, workers: int) -> None:
        if not self.migrated:
            for step in (["migrate"], ["collectstatic"]):  # as a deployment's migrate step
                subprocess.run(  # noqa: S603 - our own manage.py
                    [sys.executable, "manage.py", *step, "--noinput", "-v0"],
                    cwd=ROOT,
                    env=self.env,
                    check=True,
                    timeout=120,
                )
            self.migrated = True
        for _ in range(workers):
            self.add_worker()
        for _ in range(gateways):
            self.add_gateway()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.var / f"{name}.log").open("ab")
        self.logs.append(log)
        return subprocess.Popen(  # noqa: S603
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def add_gateway(self, **extra_env: str) -> Server:
        port = free_port()
        name = f"gateway-{self.spawned}"
        self.spawned += 1
        process = self._spawn(
            name,
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "sphere.asgi:application"],
            self.env | extra_env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("a gateway did not start: " + self.log_tail())
            time.sleep(0.2)
        self.gateways.append(process)
        server = Server(base, self)
        self.servers.append(server)
        return server

    def stop_gateway(self, server: Server) -> None:
        index = self.servers.index(server)
        process = self.gateways.pop(index)
        self.servers.pop(index)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    def add_worker(self, **extra_env: str) -> subprocess.Popen[bytes]:
        process = self._spawn(
            f"worker-{len(self.workers)}",
            [sys.executable, "manage.py", "fanout_worker"],
            self.env | extra_env,
        )
        self.workers.append(process)
        return process

    def kill_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        process = self.workers[index]
        process.send_signal(sig)
        process.wait(timeout=15)

    def signal_workers(self, sig: int) -> None:
        """Signal every running worker (SIGSTOP freezes them, SIGCONT lets them go on)."""
        for index in self.live_workers():
            self.workers[index].send_signal(sig)

    def live_workers(self) -> list[int]:
        return [i for i, process in enumerate(self.workers) if process.poll() is None]

    def busiest_worker(self) -> int:
        """The running worker that holds the most partitions."""
        holders = self.lease_holders()
        return max(self.live_workers(), key=lambda i: self.held_by(i, holders))

    def held_by(self, index: int, holders: list[str | None] | None = None) -> int:
        """How many partitions a worker holds (0 before it has announced its id: an unheld
        partition's holder is None too, which must not count as the worker's)."""
        worker = self.worker_id(index)
        if worker is None:
            return 0
        return (self.lease_holders() if holders is None else holders).count(worker)

    def worker_id(self, index: int) -> str | None:
        """The id a worker announced on start (None until it has)."""
        found = WORKER_STARTED.search(self.log(f"worker-{index}"))
        return found.group(1) if found else None

    # --- Redis as the cluster sees it ------------------------------------------------------------

    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=5, socket_connect_timeout=2
            )
        return self._redis

    def lease_holders(self) -> list[str | None]:
        raw: Any = self.redis().mget([self.keys.lease(p) for p in range(self.partitions)])
        return [value.decode() if value else None for value in raw]

    def partitions_ready(self) -> bool:
        """Every partition's lease is held by a worker process that is running."""
        live = {self.worker_id(i) for i in self.live_workers()}
        try:
            holders = self.lease_holders()
        except redis.RedisError:
            return False
        return all(holder is not None and holder in live for holder in holders)

    def stalled_workers(self, older_than_s: float = 3.0) -> list[int]:
        """Running workers whose lease loop has stopped: no heartbeat in the workers set for
        ``older_than_s`` (a live loop beats every lease TTL / 5, one second by default)."""
        try:
            beats: Any = self.redis().zrange(self.keys.workers(), 0, -1, withscores=True)
        except redis.RedisError:
            return self.live_workers()
        last = {name.decode(): score for name, score in beats}
        now_ms = time.time() * 1000
        return [
            i
            for i in self.live_workers()
            if now_ms - last.get(self.worker_id(i) or "", 0) > older_than_s * 1000
        ]

    def wait_ready(self, within: float = 40.0) -> None:
        deadline = time.monotonic() + within
        while not self.partitions_ready():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"partitions not held by live workers: {self.lease_holders()}\n"
                    + self.log_tail()
                )
            time.sleep(0.2)

    def pending(self) -> int:
        """Entries handed to a worker and not acknowledged, over every partition."""
        total = 0
        for partition in range(self.partitions):
            try:
                summary = self.redis().xpending(self.keys.stream(partition), "fanout")
            except redis.ResponseError:  # no stream or group yet
                continue
            total += int(summary["pending"])
        return total

    # --- processes' output -----------------------------------------------------------------------

    def log(self, name: str) -> str:
        path = self.var / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self) -> str:
        texts = [
            f"--- {p.name}\n" + p.read_text(errors="replace")[-1500:]
            for p in sorted(self.var.glob("*.log"))
        ]
        return "\n".join(texts)

    def manage(self, *args: str, timeout: float = 60) -> str:
        """Run a management command with the cluster's environment; returns its output."""
        done = subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self) -> None:
        for process in self.gateways + self.workers:
            if process.poll() is None:
                process.terminate()
        for process in self.gateways + self.workers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()
        if self.scaled:
            with contextlib.suppress(redis.RedisError):
                client = self.redis()
                keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
                for start in range(0, len(keys), 500):
                    client.delete(*keys[start : start + 500])
        if self._redis is not None:
            self._redis.close()
