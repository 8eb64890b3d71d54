"""Accounts: register, token (issue and revoke), browser login/logout, WebSocket tickets, and
the caller."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import login, logout
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import BaseAuthentication, CSRFCheck, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communities.api.base import actor, parse
from communities.api.serializers import (
    CredentialsIn,
    LoginOut,
    MeSerializer,
    MeUpdateIn,
    RegisterIn,
    RegisterOut,
    TicketOut,
    TokenOut,
    UserSerializer,
)
from communities.services import accounts, dms
from sphere.errors import Forbidden
from sphere.schema import errors
from sphere.throttling import AuthThrottle


class _Public(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthThrottle]


class RegisterView(_Public):
    @extend_schema(
        summary="Create an account",
        description="Usernames are 3 to 32 of `[A-Za-z0-9_]`, unique regardless of case (a "
        "taken one is 400 naming `username`); the password passes the server's validators "
        "(400 naming `password`). Answers the new user and an API token. Counted per client "
        "address (`SPHERE_THROTTLE_AUTH`).",
        request=RegisterIn,
        responses={201: RegisterOut},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        data = parse(RegisterIn, request)
        user, token = accounts.user_register(username=data["username"], password=data["password"])
        body = {"user": UserSerializer(user).data, "token": token}
        return Response(body, status=status.HTTP_201_CREATED)


def _token_of(request: Request) -> Token | None:
    """The API token the call is authenticated with (None for a session)."""
    return request.auth if isinstance(request.auth, Token) else None


class TokenView(APIView):
    """POST (public, with the password): the account's token. DELETE (with the token itself,
    ``Authorization: Token``): revoke it at once (docs/api.md, "Authentication")."""

    def _revoking(self) -> bool:
        request = getattr(self, "request", None)  # None while the schema generator builds one
        return request is not None and request.method == "DELETE"

    def get_authenticators(self) -> list[BaseAuthentication]:
        return [TokenAuthentication()] if self._revoking() else []

    def get_permissions(self) -> list[BasePermission]:
        return [IsAuthenticated()] if self._revoking() else [AllowAny()]

    def get_throttles(self) -> list[Any]:
        return super().get_throttles() if self._revoking() else [AuthThrottle()]

    @extend_schema(
        summary="Get the caller's API token",
        description="The same token on every call until it is revoked; send it as "
        "`Authorization: Token <token>`. Wrong credentials are 400 (one message for a wrong "
        "username or password); repeated failures lock the username out from the address for "
        "a while (429).",
        request=CredentialsIn,
        responses={200: TokenOut},
        tags=["auth"],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = parse(CredentialsIn, request)
        user = accounts.user_authenticate(
            username=data["username"], password=data["password"], request=request._request
        )
        return Response({"token": accounts.token_issue(user=user)})

    @extend_schema(
        summary="Revoke the token the call is made with",
        description="Authenticated with the token itself (`Authorization: Token`); it stops "
        "working at once. The next `POST auth/token` issues a new one.",
        request=None,
        responses={204: None},
        tags=["auth"],
    )
    def delete(self, request: Request) -> Response:
        token = _token_of(request)
        assert token is not None, "DELETE authenticates with a token only"
        accounts.token_revoke(user=actor(request), key=token.key)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _enforce_csrf(request: HttpRequest) -> None:
    """Django's CSRF check, as DRF applies it to session-authenticated calls."""
    check = CSRFCheck(lambda req: HttpResponse())
    check.process_request(request)
    reason = check.process_view(request, lambda req: HttpResponse(), (), {})
    if reason:
        raise Forbidden(f"CSRF check failed: {reason}")


class LoginView(_Public):
    """Browser login: a session cookie, behind Django's CSRF check like any form login."""

    @extend_schema(
        summary="Log in with a session cookie (browsers)",
        description="Sets Django's session cookie. CSRF-protected like any form login: send "
        "the `csrftoken` cookie's value in `X-CSRFToken` (403 otherwise). Wrong credentials "
        "and lockouts answer as for `auth/token`.",
        request=CredentialsIn,
        responses={200: LoginOut, **errors({403: "CSRF check failed (`forbidden`)."})},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        _enforce_csrf(request._request)
        data = parse(CredentialsIn, request)
        user = accounts.user_authenticate(
            username=data["username"], password=data["password"], request=request._request
        )
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response({"user": UserSerializer(user).data})


class LogoutView(APIView):
    """With a token: revoke it (as ``DELETE /auth/token``). With a session: end it."""

    @extend_schema(
        summary="Log out",
        description="With a token: revoke it, as `DELETE auth/token`. With a session: end it.",
        request=None,
        responses={204: None},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        token = _token_of(request)
        if token is not None:
            accounts.token_revoke(user=actor(request), key=token.key)
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WsTicketView(APIView):
    @extend_schema(
        summary="Get a WebSocket ticket",
        description="A single-use ticket for the WebSocket handshake (`/ws/v1/?ticket=`), "
        "valid for `expires_in` seconds. Only a digest of it is stored.",
        request=None,
        responses={201: TicketOut},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        token = _token_of(request)
        ticket, ttl = accounts.ws_ticket_issue(
            user=actor(request),
            credential="" if token is None else accounts.token_reference(token.key),
        )
        return Response({"ticket": ticket, "expires_in": ttl}, status=status.HTTP_201_CREATED)


class MeView(APIView):
    @extend_schema(
        summary="The caller",
        description="The signed-in user's id and username, and their settings.",
        responses={200: MeSerializer},
        tags=["auth"],
    )
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(_me(actor(request))).data)

    @extend_schema(
        summary="Change the caller's settings",
        description="`dm_policy`: who may start a DM with the caller (docs/dms.md).",
        request=MeUpdateIn,
        responses={200: MeSerializer},
        tags=["auth"],
    )
    def patch(self, request: Request) -> Response:
        data = parse(MeUpdateIn, request)
        user = actor(request)
        if "dm_policy" in data:
            dms.dm_policy_set(actor=user, policy=data["dm_policy"])
        return Response(MeSerializer(_me(user)).data)


def _me(user: User) -> dict[str, Any]:
    return {"id": user.pk, "username": user.username, "dm_policy": dms.dm_policy_of(user=user)}
