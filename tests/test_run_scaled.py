"""``make run-scaled``, as a newcomer runs it: the database created, migrated and seeded, two
gateways and two fan-out workers under honcho, plain HTTP on loopback. A message sent through
gateway A's socket reaches a socket on gateway B; Ctrl-C (SIGINT to make's process group, as a
terminal sends it) stops every process.

The run gets a database, a Redis database, a fan-out key prefix, a var directory and ports of
its own, so that it never meets the suite's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from tests.e2e.conftest import ROOT, Client, Server, free_port

pytestmark = pytest.mark.services

HELD = re.compile(r"fan-out worker (\S+): holding (\d+) of (\d+) partitions: (\S+)")
STARTED = re.compile(r"system\s+\| (\S+) started \(pid=(\d+)\)")
PROCESSES = {"gateway_a.1", "gateway_b.1", "worker_1.1", "worker_2.1"}
REDIS_DB = 14  # neither the suite's nor the end-to-end clusters' (15)


class Output:
    """The run's output, line by line, read in a thread; ``wait`` for a condition on it."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for raw in stream:
            with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.changed.notify_all()

    def wait(self, what: str, ready: Callable[[list[str]], bool], within: float) -> None:
        within = max(within, 0.0)
        deadline = time.monotonic() + within
        with self.changed:
            while not ready(self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"make run-scaled: no {what} in time:\n{tail}")
                self.changed.wait(left)

    def text(self) -> str:
        with self.changed:
            return "\n".join(self.lines)


def partitions_shared(lines: list[str]) -> bool:
    """Both workers' latest holdings together cover every partition, none held twice."""
    latest: dict[str, tuple[int, list[int]]] = {}
    for line in lines:
        match = HELD.search(line)
        if match:
            held = [] if match[4] == "none" else [int(p) for p in match[4].split(",")]
            latest[match[1]] = (int(match[3]), held)
    if len(latest) != 2:
        return False
    total = next(iter(latest.values()))[0]
    held = sorted(p for _, parts in latest.values() for p in parts)
    return held == list(range(total)) and all(parts for _, parts in latest.values())


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database name of the run's own, absent at the start (make creates it), dropped after."""
    import psycopg

    parsed = urlsplit(os.environ["DATABASE_URL"])
    name = f"sphere_run_scaled_{os.getpid()}"
    admin = urlunsplit(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    try:
        yield urlunsplit(parsed._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def gone(pid: int) -> bool:
    """No process is left in the process group honcho gave this one."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def login(server: Server, username: str) -> tuple[int, str]:
    status, body = server.call(
        "POST", "/api/v1/auth/token", {"username": username, "password": "sphere-demo-2026"}
    )
    assert status == 200, body
    status, me = server.call("GET", "/api/v1/me", token=body["token"])
    assert status == 200, me
    return me["id"], body["token"]


async def relay(gateway_a: Server, gateway_b: Server) -> None:
    """alice sends in #general through gateway A; bob's socket on gateway B gets it."""
    alice = Client(gateway_a, *login(gateway_a, "alice"))
    bob = Client(gateway_b, *login(gateway_b, "bob"))
    hello = await alice.open()
    await alice.next("synced")
    await bob.open()
    await bob.next("synced")
    general = next(r for r in hello["rooms"] if r["name"] == "general")
    assert general["head_seq"] > 0  # the seeded conversation
    body = f"across the gateways {secrets.token_hex(3)}"
    await alice.send({"type": "message.send", "room": general["id"],
                      "client_msg_id": "run-scaled", "body": body, "ref": "m1"})  # fmt: skip
    ack = await alice.next("ack")
    received = await bob.next("message.new")
    assert (received["room"], received["seq"]) == (general["id"], ack["seq"])
    assert received["message"]["body"] == body
    await alice.ws.close()
    await bob.ws.close()


@pytest.mark.timeout(90)
def test_make_run_scaled_serves_one_chat_on_two_gateways_and_stops_on_ctrl_c(
    database_url: str, tmp_path: Path
) -> None:
    venv = Path(sys.executable).parent.parent
    ports = [free_port(), free_port()]
    prefix = f"run-scaled-{secrets.token_hex(4)}"
    redis_url = urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{REDIS_DB}"))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SPHERE_FANOUT_PREFIX": prefix,
        "SPHERE_VAR_DIR": str(tmp_path),
        "SPHERE_THROTTLE_AUTH": "10000/min",
    }
    # A newcomer's environment: nothing of the suite's settings, nor of an enclosing make.
    for name in ("SPHERE_SECURE", "SPHERE_DEBUG", "SPHERE_STATIC_ROOT", "PYTEST_CURRENT_TEST",
                 "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # fmt: skip
        env.pop(name, None)
    # The virtual environment is the one running this test: make only runs the target's recipe.
    argv = ["make", "--no-print-directory", f"VENV={venv}", f"-o{venv}/.installed",
            f"-o{venv}/.installed-scaled", f"PORT_A={ports[0]}", f"PORT_B={ports[1]}",
            "run-scaled"]  # fmt: skip
    run = subprocess.Popen(  # noqa: S603 - our own Makefile
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    output = Output(run.stdout)
    up_by = time.monotonic() + 50  # set up and serving (about 30 s on a busy 2-core machine)
    pids: dict[str, int] = {}
    try:
        for label, port in zip("AB", ports, strict=True):
            output.wait(
                f"gateway {label}",
                lambda lines, port=port: any(
                    f"Listening on TCP address 127.0.0.1:{port}" in line for line in lines
                ),
                up_by - time.monotonic(),
            )
        assert f"gateway A listening on http://127.0.0.1:{ports[0]}/" in output.text()
        assert f"gateway B listening on http://127.0.0.1:{ports[1]}/" in output.text()
        output.wait(
            "share of the partitions between the two workers",
            partitions_shared,
            up_by - time.monotonic(),
        )

        gateway_a = Server(f"http://127.0.0.1:{ports[0]}")
        gateway_b = Server(f"http://127.0.0.1:{ports[1]}")
        # Plain HTTP, no redirect; the collected static files are served.
        with urllib.request.urlopen(gateway_b.base + "/", timeout=10) as page:  # noqa: S310
            assert page.status == 200
            assert page.url == gateway_b.base + "/"
            html = page.read().decode()
        script = re.search(r'src="(/static/[^"]+\.js)"', html)
        assert script, html[:500]
        with urllib.request.urlopen(gateway_b.base + script[1], timeout=10) as asset:  # noqa: S310
            assert asset.status == 200

        asyncio.run(relay(gateway_a, gateway_b))

        pids.update({m[1]: int(m[2]) for m in map(STARTED.search, output.text().splitlines()) if m})
        assert set(pids) == PROCESSES

        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert run.wait(timeout=15) != 0
        output.thread.join(5)
        text = output.text()
        for name in PROCESSES:
            assert re.search(rf"\| {re.escape(name)} stopped \(rc=", text), text[-2000:]
            assert gone(pids[name]), f"{name} (pid {pids[name]}) is still running"
        assert len(re.findall(r"fan-out worker \S+ stopped", text)) == 2  # leases released
        for port in ports:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if run.poll() is None:  # the test failed before Ctrl-C: stop what it started
            pids.update(
                {m[1]: int(m[2]) for m in map(STARTED.search, output.text().splitlines()) if m}
            )
            for pid in [run.pid, *pids.values()]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            run.wait(10)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
