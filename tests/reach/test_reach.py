"""Link reach (docs/api.md): normalization, counting in both modes, and the endpoint."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import time
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from hypothesis import given
from hypothesis import strategies as st

from chat.links import normalize_url, urls_in
from communities.selectors import room_reader_ids
from reach import store as reach
from reach.models import LinkReader, LinkStat
from reach.store import reach_of, record
from tests.conftest import World, build_world, client_for, matrix_cases
from tests.factories import UserFactory

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once
URL = "https://example.com/a"


@pytest.fixture
def embedded(settings: Any) -> None:
    """Embedded-mode counting whatever the suite's environment says."""
    settings.SCALED = False


_messages = itertools.count(1)


def count(**kwargs: Any) -> None:
    """``record`` on an event loop of its own, as the fan-out router runs it; each call is a
    message of its own unless the test names one."""
    kwargs.setdefault("message", (1, next(_messages)))
    asyncio.run(record(**kwargs))


def path(world: World, url: str | None = URL) -> str:
    base = f"/api/v1/communities/{world.community.slug}/reach"
    return base if url is None else f"{base}?url={url}"


# --- normalize_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com/a", "https://example.com/a"),
        ("HTTPS://Example.COM/a", "https://example.com/a"),
        ("Http://EXAMPLE.com/Path/Kept", "http://example.com/Path/Kept"),
        ("https://example.com/a/", "https://example.com/a"),
        ("https://example.com/a//", "https://example.com/a"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com", "https://example.com"),
        ("https://example.com/a#section", "https://example.com/a"),
        ("https://example.com/a/#section", "https://example.com/a"),
        ("https://example.com/a?q=1&B=2", "https://example.com/a?q=1&B=2"),
        ("https://example.com/a/?q=1#x", "https://example.com/a?q=1"),
        ("https://example.com/a?q=/", "https://example.com/a?q=/"),
        ("https://Example.com:8443/a", "https://example.com:8443/a"),
        ("https://User@Example.com/a", "https://User@example.com/a"),
        ("http://[2001:DB8::1]/a", "http://[2001:db8::1]/a"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("https://exämple.com/ä", "https://exämple.com/ä"),
    ],
)
def test_normalize_url_compares_as_documented(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected
    assert normalize_url(expected) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "example.com/a",
        "www.example.com",
        "ftp://example.com/a",
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "https://",
        "https:///a",
        "https:example.com",
        "http://:80/a",
        "https://example.com:99999/",
        "https://example.com:port/",
        "http://[::1/a",
        "https://exa mple.com/",
        "https://example.com/a b",
        "https://example.com/\x00",
        "https://example.com/\ud800",
        "https://example.com/\u200b",
        "https://example.com/" + "a" * 2100,
        "not a url at all",
    ],
)
def test_normalize_url_refuses_what_is_not_an_http_url(raw: str) -> None:
    assert normalize_url(raw) is None


@given(st.text(max_size=300))
def test_normalize_url_never_raises_and_is_idempotent(raw: str) -> None:
    for candidate in (raw, "https://" + raw, "http://a.example/" + raw):
        normalized = normalize_url(candidate)
        if normalized is not None:
            assert normalized.startswith(("http://", "https://"))
            assert "#" not in normalized
            assert normalize_url(normalized) == normalized


# --- urls_in ------------------------------------------------------------------------------------


def test_urls_in_finds_distinct_urls_in_order() -> None:
    body = (
        "See https://Example.com/a/, then (http://b.example/x) and "
        "<https://c.example/y?z=1#top>. Again: HTTPS://EXAMPLE.COM/a#frag!"
    )
    assert urls_in(body) == (
        "https://example.com/a",
        "http://b.example/x",
        "https://c.example/y?z=1",
    )


def test_urls_in_keeps_brackets_the_url_opened() -> None:
    body = "read https://en.wikipedia.org/wiki/Python_(language), it is good"
    assert urls_in(body) == ("https://en.wikipedia.org/wiki/Python_(language)",)
    assert urls_in("[link](https://a.example/p)") == ("https://a.example/p",)


def test_urls_in_ignores_what_is_not_an_http_url() -> None:
    assert urls_in("") == ()
    assert urls_in("no links here, just example.com and www.example.org") == ()
    assert urls_in("ftp://a.example/x mailto:x@y.example https:// http://") == ()
    assert urls_in("notahttps://a.example/x") == ()


def test_urls_in_is_bounded_to_ten() -> None:
    body = " ".join(f"https://site{i}.example/" for i in range(25))
    found = urls_in(body)
    assert found == tuple(f"https://site{i}.example" for i in range(10))


def test_urls_in_counts_a_repeated_url_once() -> None:
    body = "https://a.example/x " * 50 + "https://b.example/y"
    assert urls_in(body) == ("https://a.example/x", "https://b.example/y")


@given(st.text(max_size=2000))
def test_urls_in_never_raises(body: str) -> None:
    found = urls_in(body)
    assert len(found) <= 10
    assert len(set(found)) == len(found)
    assert all(normalize_url(url) == url for url in found)


@pytest.mark.timeout(30)
def test_urls_in_ends_on_a_hostile_body() -> None:
    """Bodies built to make a backtracking pattern run for ages: each is scanned and answered
    (a catastrophic pattern would not finish within the test's timeout)."""
    bodies = ["https://a.example/" + ")" * 3990, "http:// " * 500, "https://" + "(" * 3990]
    assert urls_in(bodies[0]) == ("https://a.example",)
    assert urls_in(bodies[1]) == ()
    assert urls_in(bodies[2]) == ()


# --- record() and reach_of(), embedded mode -----------------------------------------------------


# Recording runs in a thread with a database connection of its own: these tests commit.


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
def test_record_counts_distinct_readers_and_shares_exactly() -> None:
    count(community_id=1, urls=[URL], reader_ids={1, 2, 3})
    count(community_id=1, urls=["HTTPS://example.com/a/#x"], reader_ids=[2, 3, 4, 4])
    count(community_id=1, urls=[URL, "https://example.com/b"], reader_ids=[5])
    assert reach_of(community_id=1, url=URL) == (5, 3)
    assert reach_of(community_id=1, url="https://example.com/b") == (1, 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
def test_record_keeps_communities_apart_and_counts_a_message_once() -> None:
    # The same URL twice in one message (after normalization) is one share.
    count(community_id=1, urls=[URL, URL + "/", URL.upper()], reader_ids=[1, 2])
    count(community_id=2, urls=[URL], reader_ids=[9])
    assert reach_of(community_id=1, url=URL) == (2, 1)
    assert reach_of(community_id=2, url=URL) == (1, 1)
    assert reach_of(community_id=3, url=URL) == (0, 0)
    assert reach_of(community_id=1, url="https://unknown.example") == (0, 0)
    assert reach_of(community_id=1, url="not a url") == (0, 0)
    assert LinkStat.objects.count() == 3  # "https://EXAMPLE.COM/A" keeps its path's case
    assert LinkStat.objects.get(community_id=1, url=URL).shares == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
def test_record_ignores_invalid_urls_and_bounds_a_message() -> None:
    count(community_id=1, urls=["nope", "ftp://a.example"], reader_ids=[1])
    assert not LinkStat.objects.exists()
    many = [f"https://site{i}.example" for i in range(15)]
    count(community_id=1, urls=many, reader_ids=[1])
    assert LinkStat.objects.count() == 10


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
def test_record_without_readers_still_counts_the_share() -> None:
    count(community_id=1, urls=[URL], reader_ids=[])
    assert reach_of(community_id=1, url=URL) == (0, 1)


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
def test_record_in_db_costs_the_same_whatever_the_readers(
    django_assert_num_queries: Any,
) -> None:
    one, two = URL, "https://example.com/b"
    links = {reach.digest_of(one): one, reach.digest_of(two): two}
    # Savepoint, insert links, read their ids, add the shares, one insert of readers per link
    # (up to the backend's batch size), release.
    for readers in ([1], list(range(1, 401))):
        with django_assert_num_queries(7):
            reach._record_in_db(1, 1, links, readers)
    assert LinkReader.objects.count() == 800
    assert reach_of(community_id=1, url=one) == (400, 2)
    assert reach_of(community_id=1, url=two) == (400, 2)


async def test_record_swallows_a_failing_store(settings: Any, caplog: Any) -> None:
    settings.SCALED = True
    settings.REDIS_URL = DEAD_REDIS
    secret = "https://private.example/token=s3cret"
    await record(community_id=1, urls=[secret], reader_ids=[1, 2], message=(1, 1))
    assert "not counted" in caplog.text
    assert "private.example" not in caplog.text


# --- the endpoint -------------------------------------------------------------------------------

MATRIX = [
    (
        "reach",
        "get",
        "",
        None,
        "200 200 200 403 403 403 401",
        "200 200 200 403 404 404 401",
    ),
]


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
@pytest.mark.parametrize(
    ("visibility", "method", "unused_path", "body", "standing", "status"), matrix_cases(MATRIX)
)
def test_reach_permission_matrix(
    visibility: str, method: str, unused_path: str, body: Any, standing: str, status: int
) -> None:
    world = build_world(visibility)
    response = world.client(standing).get(path(world))
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json() == {"url": URL, "reach": 0, "shares": 0}
    else:
        codes = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}
        assert response.json()["code"] == codes[status]


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
def test_reach_of_a_missing_community_is_404(world: World) -> None:
    client = world.client("owner")
    response = client.get("/api/v1/communities/no-such-place/reach?url=" + URL)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
def test_reach_answers_the_normalized_url_and_its_counts() -> None:
    world = build_world("private")
    room = world.general.pk
    count(community_id=world.community.pk, urls=[URL], reader_ids=[1, 2, 3], message=(room, 1))
    count(community_id=world.community.pk, urls=[URL], reader_ids=[3, 4], message=(room, 2))
    response = world.client("moderator").get(path(world, "HTTPS%3A%2F%2FEXAMPLE.com%2Fa%2F%23frag"))
    assert response.status_code == 200
    assert response.json() == {"url": URL, "reach": 4, "shares": 2}


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "example.com",
        "ftp%3A%2F%2Fexample.com",
        "javascript%3Aalert(1)",
        "https%3A%2F%2F",
        "https%3A%2F%2Fexample.com%3A99999",
        "http%3A%2F%2F%5B%3A%3A1",
        "https%3A%2F%2Fexample.com%2F" + "a" * 2100,
    ],
)
def test_reach_refuses_a_missing_or_bad_url(world: World, url: str | None) -> None:
    response = world.client("moderator").get(path(world, url))
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert "url" in body["fields"]


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
@pytest.mark.parametrize(
    "url",
    [
        "https%3A%2F%2Fexample.com%2F%00",
        "https%3A%2F%2Fexample.com%2F%ff%fe",
        "%ed%a0%80",
        "https://example.com/%ED%A0%80",
        "https://%E2%80%AE.example",
        "https://example.com/" + "%F0%9F%98%80" * 600,
        "https://example.com/a&url=",
    ],
)
def test_reach_never_fails_on_odd_input(world: World, url: str) -> None:
    response = world.client("moderator").get(path(world, url))
    assert response.status_code in {200, 400}, response.content
    assert "code" in response.json() or response.json()["shares"] == 0


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
def test_reach_ignores_other_query_parameters(world: World) -> None:
    response = world.client("admin").get(path(world) + "&url=https://x.example&other=1")
    # The last value of a repeated parameter wins, as Django's QueryDict.get says.
    assert response.status_code == 200
    assert response.json()["url"] == "https://x.example"


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
def test_reach_refuses_writes(world: World) -> None:
    response = world.client("owner").post(path(world), {}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_reach_answers_503_when_redis_is_down(world: World, settings: Any) -> None:
    settings.SCALED = True
    settings.REDIS_URL = DEAD_REDIS
    response = world.client("owner").get(path(world))
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
async def test_a_posted_link_reaches_every_reader_of_the_room() -> None:
    from fanout.transport import current

    current().connections()  # the embedded partitions, as the server runs them
    world = await database_sync_to_async(build_world)("public")
    author = world.users["member"]
    author_client = await database_sync_to_async(client_for)(author)
    response = await database_sync_to_async(author_client.post)(
        f"/api/v1/rooms/{world.general.pk}/messages",
        {"body": "worth a read: https://Example.com/a/#intro", "client_msg_id": "reach-1"},
        format="json",
    )
    assert response.status_code == 201, response.content
    readers = len(await database_sync_to_async(room_reader_ids)(room_id=world.general.pk))
    moderator = await database_sync_to_async(world.client)("moderator")
    # The fan-out counts the link after the commit, outside the request: wait for it a while.
    deadline = time.monotonic() + 5
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = (await database_sync_to_async(moderator.get)(path(world))).json()
        if body.get("shares"):
            break
        await asyncio.sleep(0.05)
    assert body == {"url": URL, "reach": readers, "shares": 1}


# --- scaled mode, against the real Redis --------------------------------------------------------


@pytest.fixture
def scaled(settings: Any) -> Any:
    """Scaled-mode counting under a prefix of its own, deleted afterwards."""
    settings.SCALED = True
    settings.REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings.FANOUT_PREFIX = "test-reach-" + secrets.token_hex(6)
    yield settings
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match=settings.FANOUT_PREFIX + ":*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.services
async def test_record_on_redis_estimates_reach_within_two_percent(scaled: Any) -> None:
    community = 7
    await record(community_id=community, urls=[URL], reader_ids=range(0, 3000), message=(1, 1))
    await record(
        community_id=community, urls=[URL + "/#x"], reader_ids=range(2000, 5000), message=(1, 2)
    )
    await record(community_id=community, urls=[URL], reader_ids=range(1000, 4000), message=(2, 1))
    reach_count, shares = await asyncio.to_thread(reach_of, community_id=community, url=URL)
    assert shares == 3
    assert abs(reach_count - 5000) <= 5000 * 0.02, reach_count
    assert await asyncio.to_thread(reach_of, community_id=community + 1, url=URL) == (0, 0)
    assert await asyncio.to_thread(
        reach_of, community_id=community, url="https://unknown.example"
    ) == (0, 0)


@pytest.mark.services
async def test_record_on_redis_uses_the_given_client_and_one_slot(scaled: Any) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(scaled.REDIS_URL)
    try:
        await record(
            community_id=3,
            urls=[URL, "https://b.example"],
            reader_ids=[1, 2],
            message=(5, 1),
            client=client,
        )
        await record(community_id=3, urls=[URL], reader_ids=[2, 3], message=(5, 2), client=client)
        keys = sorted(
            [k.decode() async for k in client.scan_iter(match=scaled.FANOUT_PREFIX + ":*")]
        )
    finally:
        await client.aclose()
    assert len(keys) == 6  # per URL: room 5's readers and messages, the rooms it was posted in
    assert all(":{c3}:" in key for key in keys)
    assert await asyncio.to_thread(reach_of, community_id=3, url=URL) == (3, 2)
    assert await asyncio.to_thread(reach_of, community_id=3, url="https://b.example/") == (2, 1)


@pytest.mark.services
async def test_record_on_redis_counts_a_message_handed_over_twice_once(scaled: Any) -> None:
    """A worker that died before acknowledging hands the message over again: one share."""
    for _ in range(2):
        await record(community_id=4, urls=[URL], reader_ids=[1, 2], message=(9, 3))
    await record(community_id=4, urls=[URL], reader_ids=[3], message=(9, 4))
    assert await asyncio.to_thread(reach_of, community_id=4, url=URL) == (3, 2)


@pytest.mark.services
@pytest.mark.django_db
def test_reach_endpoint_reads_redis(scaled: Any) -> None:
    world = build_world("private")
    count(
        community_id=world.community.pk,
        urls=[URL],
        reader_ids=[1, 2],
        message=(world.general.pk, 1),
    )
    response = world.client("moderator").get(path(world))
    assert response.status_code == 200
    assert response.json() == {"url": URL, "reach": 2, "shares": 1}
    outsider = client_for(UserFactory())
    assert outsider.get(path(world)).status_code == 404


# --- only the rooms the caller can read count ---------------------------------------------------


def _share_in_both_rooms(world: World) -> None:
    """The URL posted once in the general room (readers 1-3) and once in the private room
    (readers 3-6)."""
    community = world.community.pk
    count(community_id=community, urls=[URL], reader_ids=[1, 2, 3], message=(world.general.pk, 1))
    count(
        community_id=community,
        urls=[URL],
        reader_ids=[3, 4, 5, 6],
        message=(world.private_room.pk, 1),
    )


def _reach_seen_by(world: World, user: Any) -> dict[str, Any]:
    response = client_for(user).get(path(world))
    assert response.status_code == 200, response.content
    return dict(response.json())


def _private_rooms_apply(world: World) -> None:
    from communities.roles import Role
    from tests.factories import MembershipFactory

    _share_in_both_rooms(world)
    outside = MembershipFactory(community=world.community, role=Role.MODERATOR).user
    # A moderator outside the private room sees the general room only.
    assert _reach_seen_by(world, outside) == {"url": URL, "reach": 3, "shares": 1}
    # The admin reads every room; so does the moderator who is a member of the private room.
    for standing in ("admin", "owner", "moderator"):
        seen = _reach_seen_by(world, world.users[standing])
        assert seen == {"url": URL, "reach": 6, "shares": 2}, standing


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
def test_a_private_room_counts_only_for_its_readers() -> None:
    _private_rooms_apply(build_world("public"))


@pytest.mark.services
@pytest.mark.django_db
def test_a_private_room_counts_only_for_its_readers_on_redis(scaled: Any) -> None:
    _private_rooms_apply(build_world("private"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
def test_counts_without_a_room_show_only_to_who_reads_every_room() -> None:
    """Rows counted before reach was kept per room."""
    from communities.roles import Role
    from tests.factories import MembershipFactory

    world = build_world("public")
    _share_in_both_rooms(world)
    old = LinkStat.objects.create(
        community_id=world.community.pk, digest=reach.digest_of(URL), url=URL, shares=4
    )
    LinkReader.objects.bulk_create([LinkReader(link=old, user_id=u) for u in (6, 7)])
    outside = MembershipFactory(community=world.community, role=Role.MODERATOR).user
    assert _reach_seen_by(world, outside) == {"url": URL, "reach": 3, "shares": 1}
    assert _reach_seen_by(world, world.users["admin"]) == {"url": URL, "reach": 7, "shares": 6}


@pytest.mark.services
@pytest.mark.django_db
def test_counts_without_a_room_show_only_to_who_reads_every_room_on_redis(scaled: Any) -> None:
    from communities.roles import Role
    from fanout.redis.keys import Keys
    from tests.factories import MembershipFactory

    world = build_world("public")
    _share_in_both_rooms(world)
    keys, digest = Keys(), reach.digest_of(URL)
    client = redis.Redis.from_url(scaled.REDIS_URL)
    try:
        client.pfadd(keys.reach(world.community.pk, digest), 6, 7)
        client.sadd(keys.shares(world.community.pk, digest), "900:1", "900:2")
    finally:
        client.close()
    outside = MembershipFactory(community=world.community, role=Role.MODERATOR).user
    assert _reach_seen_by(world, outside) == {"url": URL, "reach": 3, "shares": 1}
    assert _reach_seen_by(world, world.users["admin"]) == {"url": URL, "reach": 7, "shares": 4}
