"""Accounts: register, token, browser login with CSRF, logout, WebSocket tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from communities.models import WsTicket
from communities.services.accounts import ws_ticket_issue, ws_ticket_redeem
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def post(path: str, body: Any, client: APIClient | None = None) -> Any:
    return (client or APIClient()).post(path, body, format="json")


def test_register_returns_user_and_a_working_token() -> None:
    response = post("/api/v1/auth/register", {"username": "new_user", "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["username"] == "new_user"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert client.get("/api/v1/me").json() == {**body["user"], "dm_policy": "communities"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ab", "password": PASSWORD}, "username"),
        ({"username": "x" * 33, "password": PASSWORD}, "username"),
        ({"username": "bad-name", "password": PASSWORD}, "username"),
        ({"username": "good_name", "password": "short"}, "password"),
        ({"username": "good_name", "password": "12345678901"}, "password"),
        ({"username": "good_name", "password": "password"}, "password"),
        ({"username": "good_name"}, "password"),
        ({"username": "good_name", "password": PASSWORD, "admin": True}, "admin"),
        ({"username": 5, "password": PASSWORD}, "username"),
    ],
)
def test_register_refuses_bad_input_with_fields(body: dict[str, Any], field: str) -> None:
    response = post("/api/v1/auth/register", body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["fields"]


def test_register_refuses_a_taken_name_in_any_case() -> None:
    UserFactory(username="Alice")
    response = post("/api/v1/auth/register", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert "username" in response.json()["fields"]


def test_token_for_right_and_wrong_credentials() -> None:
    user = UserFactory()
    ok = post("/api/v1/auth/token", {"username": user.username, "password": PASSWORD})
    assert ok.status_code == 200
    assert len(ok.json()["token"]) == 40
    wrong = post("/api/v1/auth/token", {"username": user.username, "password": "nope-nope-nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (400, "invalid")
    user.is_active = False
    user.save()
    disabled = post("/api/v1/auth/token", {"username": user.username, "password": PASSWORD})
    assert disabled.status_code == 400


def test_calls_without_credentials_are_401_with_a_challenge() -> None:
    response = APIClient().get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response["WWW-Authenticate"] == "Token"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert bad.get("/api/v1/me").status_code == 401


def test_browser_login_needs_csrf_then_the_session_works() -> None:
    user = UserFactory()
    browser = APIClient(enforce_csrf_checks=True)
    credentials = {"username": user.username, "password": PASSWORD}
    refused = post("/api/v1/auth/login", credentials, browser)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")

    browser.get("/admin/login/")  # any Django page with a form sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    ok = browser.post("/api/v1/auth/login", credentials, format="json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200
    assert ok.json() == {"user": {"id": user.pk, "username": user.username}}
    assert "sessionid" in browser.cookies
    assert browser.get("/api/v1/me").json()["id"] == user.pk

    # Unsafe session calls need the CSRF token, as Django does it.
    token = browser.cookies["csrftoken"].value
    assert browser.post("/api/v1/auth/ws-ticket").status_code == 403
    assert browser.post("/api/v1/auth/logout", HTTP_X_CSRFTOKEN=token).status_code == 204
    assert browser.get("/api/v1/me").status_code == 401


def test_login_with_wrong_password_is_400() -> None:
    user = UserFactory()
    response = post("/api/v1/auth/login", {"username": user.username, "password": "x" * 12})
    assert response.status_code == 400


def test_ws_ticket_is_single_use() -> None:
    user = UserFactory()
    response = client_for(user).post("/api/v1/auth/ws-ticket")
    assert response.status_code == 201
    body = response.json()
    assert body["expires_in"] == 60
    assert ws_ticket_redeem(ticket=body["ticket"]) == user
    assert ws_ticket_redeem(ticket=body["ticket"]) is None
    assert not WsTicket.objects.filter(digest=body["ticket"]).exists()  # only the digest is kept


def test_ws_ticket_expires_after_60_s() -> None:
    user = UserFactory()
    ticket, _ = ws_ticket_issue(user=user)
    WsTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert ws_ticket_redeem(ticket=ticket) is None


@pytest.mark.parametrize("ticket", ["", "garbage", "x" * 500])
def test_ws_ticket_bad_values(ticket: str) -> None:
    assert ws_ticket_redeem(ticket=ticket) is None


def test_ws_ticket_of_a_disabled_user_is_refused() -> None:
    user = UserFactory()
    ticket, _ = ws_ticket_issue(user=user)
    user.is_active = False
    user.save()
    assert ws_ticket_redeem(ticket=ticket) is None


def test_repeated_failures_lock_the_username_out_from_that_address(settings: Any) -> None:
    """The failure that reaches SPHERE_LOGIN_FAILURE_LIMIT locks out; then even the right
    password is refused (429 with Retry-After) for the cool-off time; another address is not
    locked out."""
    settings.AXES_FAILURE_LIMIT = 3
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "auth": "1000/min"}
    user = UserFactory()
    wrong = {"username": user.username, "password": "not-the-password"}
    for _ in range(2):
        assert post("/api/v1/auth/token", wrong).status_code == 400
    assert post("/api/v1/auth/token", wrong).status_code == 429
    right = {"username": user.username, "password": PASSWORD}
    locked = post("/api/v1/auth/token", right)
    assert (locked.status_code, locked.json()["code"]) == (429, "rate_limited")
    assert int(locked["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    elsewhere = APIClient(REMOTE_ADDR="10.9.8.7")
    assert post("/api/v1/auth/token", right, elsewhere).status_code == 200


def test_the_admin_login_locks_out_too(settings: Any) -> None:
    from django.test import Client

    settings.AXES_FAILURE_LIMIT = 2
    staff = UserFactory(is_staff=True)
    client = Client()
    page = client.post("/admin/login/", {"username": staff.username, "password": "wrong"})
    assert page.status_code == 200  # the form again
    assert (
        client.post("/admin/login/", {"username": staff.username, "password": "wrong"}).status_code
        == 429
    )
    locked = client.post("/admin/login/", {"username": staff.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert "Retry-After" in locked
