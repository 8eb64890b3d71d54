"""Shared helpers of the API views."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from rest_framework import serializers
from rest_framework.request import Request


def parse(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The request body validated by ``serializer_class``; 400 ``invalid`` otherwise."""
    data = request.data if request.data is not None else {}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def actor(request: Request) -> User:
    """The authenticated caller (every view but the public auth ones requires one)."""
    user = request.user
    assert isinstance(user, User), "view reached without authentication"
    return user
