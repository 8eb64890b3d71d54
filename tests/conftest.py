"""Shared fixtures: a community with one user of every standing, and API clients."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from communities.models import Ban, Community, Room, RoomMember
from tests.factories import CommunityFactory, MembershipFactory, RoomFactory, UserFactory

# Property tests judge behaviour, never speed: a loaded CI machine must not fail them on a
# per-example deadline or a "too slow" health check.
hypothesis_settings.register_profile(
    "sphere", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("sphere")

STANDINGS = ["owner", "admin", "moderator", "member", "outsider", "banned", "anonymous"]


@pytest.fixture(autouse=True)
def _plain_http(settings: Any) -> None:
    """The suite talks plain HTTP to the test client; production redirects to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False
    # The production hasher is slow by design; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.THROTTLE_RATES = {"user": "100000/min", "auth": "100000/min"}


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Forget rate-limit windows and the like between tests. On Redis only the cache's own keys
    go: ``cache.clear()`` would flush the whole database, the fan-out tier's streams, leases
    and registry with it."""
    from django.core.cache import cache

    if not django_settings.SCALED:
        cache.clear()
        return
    import redis

    prefix = django_settings.CACHES["default"]["KEY_PREFIX"]
    client = redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def client_for(user: Any | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@dataclass
class World:
    """One community (public or private) with a user of every standing and three rooms."""

    community: Community
    users: dict[str, Any]
    general: Room
    private_room: Room
    target: Any  # a plain member that acts are aimed at

    def client(self, standing: str) -> APIClient:
        return client_for(None if standing == "anonymous" else self.users[standing])


def build_world(visibility: str = "public") -> World:
    community = CommunityFactory(visibility=visibility)
    users: dict[str, Any] = {}
    for role in ["owner", "admin", "moderator", "member"]:
        users[role] = MembershipFactory(community=community, role=role).user
    users["outsider"] = UserFactory()
    users["banned"] = UserFactory()
    Ban.objects.create(community=community, user=users["banned"], by=users["owner"])
    target = MembershipFactory(community=community).user
    general = RoomFactory(community=community, name="general")
    private_room = RoomFactory(community=community, name="secret", private=True)
    RoomMember.objects.create(room=private_room, user=users["moderator"])
    return World(community, users, general, private_room, target)


@pytest.fixture
def world(db: Any) -> World:
    return build_world("public")


@pytest.fixture
def private_world(db: Any) -> World:
    return build_world("private")


@pytest.fixture
def user(db: Any) -> Any:
    return UserFactory()


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Scaled-mode tests need PostgreSQL and Redis. Without them they skip with one clear line,
    unless REQUIRE_SERVICES=1 (CI), where they fail."""
    marked = [item for item in items if item.get_closest_marker("services")]
    if not marked:
        return
    redis_url = os.environ.get("REDIS_URL", "")
    database = django_settings.DATABASES["default"]["ENGINE"]
    missing = []
    if not redis_url or not _reachable(redis_url, 6379):
        missing.append("Redis (set REDIS_URL, e.g. redis://127.0.0.1:6379/0)")
    if "postgresql" not in database:
        missing.append("PostgreSQL (set DATABASE_URL, e.g. postgres://postgres@127.0.0.1/sphere)")
    if not missing:
        return
    reason = "scaled-mode test: start " + " and ".join(missing)
    if os.environ.get("REQUIRE_SERVICES") == "1":
        raise pytest.UsageError("REQUIRE_SERVICES=1 but no " + reason.split(": ", 1)[1])
    for item in marked:
        item.add_marker(pytest.mark.skip(reason=reason))


def matrix_cases(matrix: list[Any]) -> list[Any]:
    """Permission-matrix rows (name, method, path, body, public statuses, private statuses or
    None for the same) as one pytest case per visibility and standing."""
    cases = []
    for name, method, path, body, public, private in matrix:
        for visibility, expected in (("public", public), ("private", private or public)):
            for standing, status in zip(STANDINGS, expected.split(), strict=True):
                cases.append(
                    pytest.param(
                        visibility,
                        method,
                        path,
                        body,
                        standing,
                        int(status),
                        id=f"{name}-{visibility}-{standing}",
                    )
                )
    return cases


def in_threads(calls: list[Any]) -> list[Any]:
    """Run the calls at once, each in its own thread with its own database connection; an
    ApplicationError comes back as the result."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from sphere.errors import ApplicationError

    def run(call: Any) -> Any:
        try:
            return call()
        except ApplicationError as exc:
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture(scope="session", autouse=True)
def _fanout_tier(django_db_setup: Any, django_db_blocker: Any) -> Any:
    """Scaled mode: events travel through Redis streams, so the suite runs a partition worker
    (in a thread of its own, on the test database) under a key prefix of its own."""
    if not django_settings.SCALED or not django_settings.DATABASES["default"]["NAME"].startswith(
        "test_"
    ):
        yield None  # embedded mode, or no test of this session uses the database
        return
    import asyncio
    import secrets
    import threading

    import redis

    django_settings.FANOUT_PREFIX = f"test-{secrets.token_hex(4)}"
    from fanout.redis.worker import Worker

    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            worker = Worker(worker_id="suite-worker")
            holder["worker"], holder["loop"] = worker, asyncio.get_running_loop()
            started.set()
            await worker.run()

        asyncio.run(main())

    with django_db_blocker.unblock():
        thread = threading.Thread(target=run, daemon=True, name="fanout-worker")
        thread.start()
        started.wait(10)
        yield holder.get("worker")
        holder["loop"].call_soon_threadsafe(holder["worker"].stop)
        thread.join(10)
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{django_settings.FANOUT_PREFIX}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _message_writer(django_db_setup: Any) -> Any:
    """The group-commit writer keeps a connection of its own: closed before the test database
    is dropped."""
    yield
    from chat.writer import stop_writer

    stop_writer()
