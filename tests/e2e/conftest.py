"""A real Sphere server (daphne) on a loopback port, driven over HTTP and WebSockets.

The server runs in its own process with its own database (a fresh SQLite file, or the scaled
mode's PostgreSQL and Redis when the suite runs with them); tests reach it only through the
public API, as a client would.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import websockets

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, base: str, cluster: Any = None) -> None:
        self.base = base
        self.ws = base.replace("http://", "ws://") + "/ws/v1/"
        self.cluster = cluster  # the processes behind it (management commands on its data)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def register(self) -> tuple[int, str]:
        name = "u" + secrets.token_hex(6)
        status, body = self.call(
            "POST",
            "/api/v1/auth/register",
            {"username": name, "password": "e2e-" + secrets.token_hex(16)},
        )
        assert status == 201, body
        return body["user"]["id"], body["token"]

    def ticket(self, token: str) -> str:
        status, body = self.call("POST", "/api/v1/auth/ws-ticket", token=token)
        assert status == 201, body
        return str(body["ticket"])


@contextmanager
def own_database(url: str, tag: str = "") -> Iterator[str]:
    """In the scaled mode the server gets a PostgreSQL database of its own (named after this
    process and ``tag``), made and dropped here, so that a fresh machine needs nothing created
    by hand."""
    if not url.startswith(("postgres://", "postgresql://")):
        yield url
        return
    import psycopg

    parsed = urlsplit(url)
    name = f"sphere_e2e_{os.getpid()}" + (f"_{tag}" if tag else "")
    admin = urlunsplit(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parsed._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gateway (plus one fan-out worker in the scaled mode)."""
    from tests.e2e.cluster import Cluster

    with own_database(os.environ.get("DATABASE_URL", "")) as database_url:
        cluster = Cluster(tmp_path_factory.mktemp("e2e-var"), database_url)
        try:
            cluster.start(gateways=1, workers=1 if cluster.scaled else 0)
            yield cluster.servers[0]
        finally:
            cluster.stop()


TIMEOUT = 10


class Client:
    def __init__(self, server: Server, user_id: int, token: str) -> None:
        self.server, self.user_id, self.token = server, user_id, token
        self.pool: list[dict[str, Any]] = []

    async def open(self, sync: dict[str, int] | None = None) -> dict[str, Any]:
        ticket = await asyncio.to_thread(self.server.ticket, self.token)
        self.ws = await websockets.connect(
            f"{self.server.ws}?ticket={ticket}", max_size=2**20, open_timeout=TIMEOUT
        )
        self.pool = []
        hello = await self.next("hello")
        await self.send(
            {"type": "sync", "rooms": {str(k): v for k, v in (sync or {}).items()}, "ref": "sync"}
        )
        return hello

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, type_: str, before: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        for index, frame in enumerate(self.pool):
            if frame["type"] == type_:
                if before is not None:
                    before.extend(self.pool[:index])
                    del self.pool[: index + 1]
                else:
                    del self.pool[index]
                return frame
        if before is not None:
            before.extend(self.pool)
            self.pool.clear()
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if frame["type"] == type_:
                return frame
            (before if before is not None else self.pool).append(frame)

    async def events(self, room: int) -> list[dict[str, Any]]:
        """Every room event already sent to this connection (up to a ping's pong)."""
        await self.send({"type": "ping", "ref": "flush"})
        before: list[dict[str, Any]] = []
        await self.next("pong", before)
        return [f for f in before if f.get("room") == room and "seq" in f]


def api(server: Server, method: str, path: str, body: Any = None, token: str = "") -> Any:
    return server.call(method, path, body, token=token)


@pytest.fixture
def room(server: Server) -> tuple[int, str, list[tuple[int, str]]]:
    """A public community's general room and three users in it (the first one owns it)."""
    users = [server.register() for _ in range(3)]
    owner_token = users[0][1]
    name = f"E2E place {users[0][0]}"  # community names are unique (docs/api.md, "Names")
    status, community = api(server, "POST", "/api/v1/communities/", {"name": name}, owner_token)
    assert status == 201
    slug = community["slug"]
    for _, token in users[1:]:
        assert api(server, "POST", f"/api/v1/communities/{slug}/join", None, token)[0] == 200
    status, rooms = api(server, "GET", f"/api/v1/communities/{slug}/rooms/", None, owner_token)
    return rooms["results"][0]["id"], slug, users
