"""A first delivery probe of the scaled mode: one room of N members, all connected through real
gateways, one sender at a fixed rate; prints deliveries per server-CPU-second and latency from
send to the last member.

    .venv/bin/python bench/probe.py --members 1000 --rate 10 --seconds 10

Needs PostgreSQL and Redis on 127.0.0.1 (a database and a Redis key prefix of its own are made
and removed). Clients run in separate processes; everything is on loopback and bounded in
count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
UNUSABLE = "!"  # Django's marker of an unusable password: probe users never log in


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def pids_of(name: str) -> list[int]:
    out = subprocess.run(  # noqa: S603 - a fixed command on a fixed name
        ["/usr/bin/pgrep", "-f", name], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- client processes ----------------------------------------------------------------------------


def client_process(
    urls: list[str], room: int, ready: Any, go: Any, out: Any, seconds: float, expected: int
) -> None:
    import websockets

    async def one(url: str, received: list[tuple[int, float, float]], opened: list[int]) -> None:
        async with websockets.connect(url, max_size=2**22, open_timeout=60) as ws:
            json.loads(await ws.recv())  # hello
            await ws.send(json.dumps({"type": "sync", "rooms": {}, "ref": "s"}))
            while json.loads(await ws.recv())["type"] != "synced":
                pass
            opened.append(1)
            end = None
            while True:
                timeout = None if end is None else max(0.01, end - time.monotonic())
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout)
                except TimeoutError:
                    return
                now = time.time()
                frame = json.loads(raw)
                if frame.get("type") == "message.new" and frame["room"] == room:
                    sent = float(frame["message"]["body"].split("=", 1)[1])
                    received.append((frame["seq"], sent, now))
                    if len(received) >= expected:
                        return
                if end is None and go.is_set():
                    end = time.monotonic() + seconds + 15

    async def main() -> None:
        received: list[list[tuple[int, float, float]]] = [[] for _ in urls]
        opened: list[int] = []
        tasks = []
        for index, url in enumerate(urls):
            tasks.append(asyncio.create_task(one(url, received[index], opened)))
            if index % 50 == 49:
                await asyncio.sleep(0.05)
        while len(opened) < len(urls):
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                raise RuntimeError(f"{len(failed)} clients failed: {failed[0].exception()!r}")
            await asyncio.sleep(0.1)
        ready.put(len(urls))
        await asyncio.gather(*tasks, return_exceptions=True)
        out.put(received)

    asyncio.run(main())


# --- the run --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--gateways", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--client-procs", type=int, default=4)
    args = parser.parse_args()
    if args.members > 5000 or args.seconds > 120 or args.rate > 1000:
        parser.error("bounded: at most 5000 members, 120 seconds and 1000 messages/s")

    database = f"sphere_probe_{os.getpid()}"
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
        conn.execute(f'CREATE DATABASE "{database}"')
    prefix = f"probe-{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERE_")}
    env |= {
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": REDIS,
        "SPHERE_FANOUT_PREFIX": prefix,
        "SPHERE_SECURE": "0",
        "SPHERE_DEBUG": "0",
        "SPHERE_LOG_LEVEL": "WARNING",
        "SPHERE_RATE_MESSAGES": "1000000/min",
        "SPHERE_THROTTLE_USER": "1000000/min",
        "SPHERE_VAR_DIR": str(Path(tempfile.gettempdir()) / prefix),
        "DJANGO_SETTINGS_MODULE": "sphere.settings",
    }
    os.environ.update(env)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        import django

        django.setup()
        from django.contrib.auth.models import User

        from communities.models import Community, Membership, Room
        from communities.services.accounts import ws_ticket_issue

        users = User.objects.bulk_create(
            [User(username=f"m{n}", password=UNUSABLE) for n in range(args.members + 1)]
        )
        community = Community.objects.create(name="Probe", slug="probe")
        Membership.objects.bulk_create(
            [
                Membership(community=community, user=u, role="owner" if n == 0 else "member")
                for n, u in enumerate(users)
            ]
        )
        room = Room.objects.create(community=community, name="general")
        from django.conf import settings

        settings.WS_TICKET_TTL_S = 600  # the whole fleet connects on tickets issued up front
        tickets = [ws_ticket_issue(user=u)[0] for u in users]
        from django.db import connection

        connection.close()

        log = (Path(tempfile.gettempdir()) / f"{prefix}.log").open("ab")
        ports = [free_port() for _ in range(args.gateways)]
        for _ in range(args.workers):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "fanout_worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for port in ports:
            processes.append(
                subprocess.Popen(  # noqa: S603
                    [
                        sys.executable,
                        "-m",
                        "daphne",
                        "-b",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "sphere.asgi:application",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        time.sleep(3)
        urls = [
            f"ws://127.0.0.1:{ports[n % len(ports)]}/ws/v1/?ticket={t}"
            for n, t in enumerate(tickets[1:])
        ]
        ready: Any = mp.Queue()
        out: Any = mp.Queue()
        go = mp.Event()
        clients = []
        per = -(-len(urls) // args.client_procs)
        for i in range(args.client_procs):
            chunk = urls[i * per : (i + 1) * per]
            proc = mp.Process(
                target=client_process,
                args=(chunk, room.pk, ready, go, out, args.seconds, int(args.rate * args.seconds)),
            )
            proc.start()
            clients.append(proc)
        t_connect = time.monotonic()
        connected = sum(ready.get(timeout=300) for _ in clients)
        print(f"{connected} connected in {time.monotonic() - t_connect:.1f} s", flush=True)
        time.sleep(2)  # idle: memory per connection
        server_pids = [p.pid for p in processes] + pids_of("redis-server") + pids_of("postgres")

        async def send() -> int:
            import websockets

            url = f"ws://127.0.0.1:{ports[0]}/ws/v1/?ticket={tickets[0]}"
            async with websockets.connect(url, max_size=2**22) as ws:
                json.loads(await ws.recv())
                count = int(args.rate * args.seconds)
                start = time.monotonic()
                for n in range(count):
                    delay = start + n / args.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    frame = {
                        "type": "message.send",
                        "room": room.pk,
                        "client_msg_id": f"p{n}",
                        "body": f"t={time.time()}",
                        "ref": str(n),
                    }
                    await ws.send(json.dumps(frame))
                acks = 0
                while acks < count:
                    if json.loads(await ws.recv()).get("type") == "ack":
                        acks += 1
                return count

        cpu_before = cpu_seconds(server_pids)
        wall = time.monotonic()
        go.set()
        sent = asyncio.run(send())
        results: list[list[tuple[int, float, float]]] = []
        for _ in clients:
            results.extend(out.get(timeout=args.seconds + 120))
        wall = time.monotonic() - wall
        cpu = cpu_seconds(server_pids) - cpu_before
        for proc in clients:
            proc.join(10)

        deliveries = sum(len(r) for r in results)
        lost = dup = disorder = 0
        last: dict[int, float] = {}
        first_sent: dict[int, float] = {}
        for received in results:
            seqs = [s for s, _, _ in received]
            lost += len(set(range(1, sent + 1)) - set(seqs))
            dup += len(seqs) - len(set(seqs))
            disorder += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
            for seq, at, got in received:
                first_sent[seq] = at
                last[seq] = max(last.get(seq, 0.0), got)
        latencies = sorted(last[s] - first_sent[s] for s in last)
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        print(f"members {connected} · gateways {args.gateways} · workers {args.workers} · "
              f"{sent} messages at {args.rate}/s")  # fmt: skip
        print(f"deliveries {deliveries} (expected {sent * connected}) · lost {lost} · "
              f"duplicated {dup} · out of order {disorder}")  # fmt: skip
        print(f"server CPU {cpu:.2f} s over {wall:.1f} s · deliveries per server-CPU-second "
              f"{deliveries / cpu:,.0f}")  # fmt: skip
        mean = statistics.mean(latencies) * 1000
        print(f"send → last member: p50 {p(0.5):.1f} ms · p99 {p(0.99):.1f} ms · "
              f"max {latencies[-1] * 1000:.1f} ms · mean {mean:.1f} ms")  # fmt: skip
        print("command: .venv/bin/python bench/probe.py " + " ".join(sys.argv[1:]))
    finally:
        for server in processes:
            server.terminate()
        for server in processes:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        import redis

        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
