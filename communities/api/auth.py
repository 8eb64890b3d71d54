"""Accounts: register, token, browser login/logout, WebSocket tickets, and the caller."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authentication import CSRFCheck
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from communities.api.base import actor, parse
from communities.api.serializers import (
    CredentialsIn,
    LoginOut,
    RegisterOut,
    TicketOut,
    TokenOut,
    UserSerializer,
)
from communities.services import accounts
from sphere.errors import Forbidden
from sphere.throttling import AuthThrottle


class _Public(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthThrottle]


class RegisterView(_Public):
    @extend_schema(request=CredentialsIn, responses={201: RegisterOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = parse(CredentialsIn, request)
        user, token = accounts.user_register(username=data["username"], password=data["password"])
        body = {"user": UserSerializer(user).data, "token": token}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenView(_Public):
    @extend_schema(request=CredentialsIn, responses={200: TokenOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = parse(CredentialsIn, request)
        user = accounts.user_authenticate(
            username=data["username"], password=data["password"], request=request._request
        )
        return Response({"token": accounts.token_issue(user=user)})


def _enforce_csrf(request: HttpRequest) -> None:
    """Django's CSRF check, as DRF applies it to session-authenticated calls."""
    check = CSRFCheck(lambda req: HttpResponse())
    check.process_request(request)
    reason = check.process_view(request, lambda req: HttpResponse(), (), {})
    if reason:
        raise Forbidden(f"CSRF check failed: {reason}")


class LoginView(_Public):
    """Browser login: a session cookie, behind Django's CSRF check like any form login."""

    @extend_schema(request=CredentialsIn, responses={200: LoginOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        _enforce_csrf(request._request)
        data = parse(CredentialsIn, request)
        user = accounts.user_authenticate(
            username=data["username"], password=data["password"], request=request._request
        )
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response({"user": UserSerializer(user).data})


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WsTicketView(APIView):
    @extend_schema(request=None, responses={201: TicketOut}, tags=["auth"])
    def post(self, request: Request) -> Response:
        ticket, ttl = accounts.ws_ticket_issue(user=actor(request))
        return Response({"ticket": ticket, "expires_in": ttl}, status=status.HTTP_201_CREATED)


class MeView(APIView):
    @extend_schema(responses={200: UserSerializer}, tags=["auth"])
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)
