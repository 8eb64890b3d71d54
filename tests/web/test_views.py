"""The web client's page: served at ``/`` with its CSRF cookie and a strict content policy."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_page_sets_the_csrf_cookie_and_a_content_policy() -> None:
    response = Client().get("/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    page = response.content.decode()
    assert 'type="module"' in page
    assert "/static/web/app.js" in page
    assert "<script>" not in page  # no inline script for the policy to refuse


def test_the_page_takes_only_get_and_head() -> None:
    client = Client()
    assert client.head("/").status_code == 200
    response = client.post("/")
    assert response.status_code == 405  # a browser page: Django's own answer, not the API's
    assert response["Allow"] == "GET, HEAD"
