"""/healthz answers 200 when every dependency answers, 503 naming those that do not."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


def test_healthz_ok_in_the_embedded_mode() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok", "fanout": "ok"},
    }


def test_healthz_names_an_unreachable_fanout_transport(settings: Any) -> None:
    settings.SCALED = True
    settings.REDIS_URL = DEAD_REDIS
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "unavailable"
    assert "fanout" in body["message"]
    assert body["checks"] == {"database": "ok", "channel_layer": "ok", "fanout": "failing"}


def test_healthz_names_an_unreachable_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [DEAD_REDIS]},
        }
    }
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["channel_layer"] == "failing"
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.services
def test_healthz_names_a_broken_database() -> None:
    # The embedded suite's in-memory SQLite cannot be closed from under Django; PostgreSQL can.
    from django.db import connection

    connection.close()
    original = connection.settings_dict["NAME"]
    try:
        connection.settings_dict["NAME"] = "no_such_database_sphere"
        response = Client().get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failing"


def test_healthz_is_not_redirected_to_https(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/healthz").status_code == 200


@pytest.mark.services
def test_healthz_ok_in_the_scaled_mode(settings: Any) -> None:
    from django.db import connection

    assert connection.vendor == "postgresql"
    assert settings.SCALED
    response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    assert set(response.json()["checks"].values()) == {"ok"}
