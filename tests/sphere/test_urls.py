"""The plain Django views outside DRF take only GET (and HEAD), like the API's GET-only views:
any other method is 405 ``method_not_allowed`` in the API's error body, not a CSRF refusal."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)

GET_ONLY = ["/healthz", "/api/asyncapi.json"]


@pytest.mark.parametrize("path", GET_ONLY)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_get_only_views_refuse_other_methods_with_405(path: str, method: str) -> None:
    # enforce_csrf_checks: a browser-like client, as the CSRF refusal happened in production.
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response.status_code == 405, response.content
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/healthz", "/api/asyncapi.json"])
def test_get_only_views_still_answer_get_and_head(path: str) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.get(path).status_code == 200
    assert client.head(path).status_code == 200
