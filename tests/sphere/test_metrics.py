"""``/metrics``: Prometheus text for scrapers on private addresses or with the token."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


def test_metrics_are_served_to_a_local_scraper(db: Any) -> None:
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in [
        "sphere_fanout_deliveries_total",
        "sphere_fanout_drops_total",
        "sphere_fanout_redeliveries_total",
        "sphere_fanout_latency_seconds_bucket",
        "sphere_gateway_connections",
    ]:
        assert name in text, name


def test_metrics_are_refused_to_a_public_address(db: Any) -> None:
    response = Client(REMOTE_ADDR="8.8.8.8").get("/metrics")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 403), ("Bearer wrong", 403), ("Bearer s3cret-scrape", 200), ("s3cret-scrape", 200)],
)
def test_a_configured_token_is_required_from_anywhere(
    db: Any, settings: Any, header: str | None, status: int
) -> None:
    settings.METRICS_TOKEN = "s3cret-scrape"
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    assert Client().get("/metrics", **extra).status_code == status


def test_only_get_is_allowed(db: Any) -> None:
    response = Client().post("/metrics")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.services
def test_partition_lag_and_pending_come_from_redis(db: Any, settings: Any) -> None:
    assert settings.SCALED
    text = Client().get("/metrics").content.decode()
    assert 'sphere_fanout_partition_pending{partition="0"}' in text
    assert 'sphere_fanout_partition_lag{partition="0"}' in text
