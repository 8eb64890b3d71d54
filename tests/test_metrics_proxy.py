"""``/metrics`` behind a proxy (docs/operations.md, "Metrics"): the client writes the left-most
``X-Forwarded-For`` entry, which ``daphne --proxy-headers`` makes the request's peer, so a
forged loopback address must never open the metrics; behind a proxy only the token does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.live_daphne import Daphne, daphne

FORGED = {"X-Forwarded-For": "127.0.0.1, 8.8.8.8"}


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    """daphne as docker-compose.yml runs it: --proxy-headers, SPHERE_BEHIND_PROXY, no token."""
    var: Path = tmp_path_factory.mktemp("metrics-proxy")
    with daphne(var, "--proxy-headers", SPHERE_BEHIND_PROXY="1") as server:
        yield server


@pytest.mark.parametrize(
    "headers",
    [
        FORGED,
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Forwarded-For": "10.0.0.7, 127.0.0.1"},
        {},  # the proxy's own (loopback) address
    ],
)
def test_behind_a_proxy_without_a_token_nobody_scrapes(
    proxied: Daphne, headers: dict[str, str]
) -> None:
    status, body = proxied.get("/metrics", headers)
    assert status == 403, body
    assert b'"code": "forbidden"' in body or b'"code":"forbidden"' in body


def test_a_forged_loopback_hop_is_not_the_client(db: Any, settings: Any) -> None:
    """Trusting one proxy, the client is the right-most hop, not what daphne put in
    REMOTE_ADDR (the left-most entry)."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    forged = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1, 8.8.8.8")
    assert forged.get("/metrics").status_code == 403
    private = Client(REMOTE_ADDR="8.8.8.8", HTTP_X_FORWARDED_FOR="8.8.8.8, 10.0.0.7")
    assert private.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 403), ("Bearer wrong", 403), ("Bearer s3cret-scrape", 200)],
)
def test_behind_a_proxy_the_token_opens_the_metrics(
    db: Any, settings: Any, authorization: str | None, status: int
) -> None:
    settings.BEHIND_PROXY = True
    settings.METRICS_TOKEN = "s3cret-scrape"
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    client = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert client.get("/metrics", **extra).status_code == status


def test_behind_a_proxy_a_loopback_peer_is_refused_without_a_token(db: Any, settings: Any) -> None:
    settings.BEHIND_PROXY = True
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
