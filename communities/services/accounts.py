"""Accounts: registration, API tokens and WebSocket tickets."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, password_validation
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from communities.models import WsTicket
from sphere.errors import Invalid, RateLimited

USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{3,32}$")


def user_register(*, username: str, password: str) -> tuple[User, str]:
    """Create an account and its API token.

    Raises Invalid (``fields``) when the username is malformed or taken (case-insensitively),
    or the password is weak.
    """
    User = get_user_model()
    if not USERNAME_RE.match(username):
        raise Invalid(
            "Invalid username.",
            fields={"username": ["3 to 32 characters of letters, digits and underscore."]},
        )
    candidate = User(username=username)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise Invalid("Weak password.", fields={"password": list(exc.messages)}) from exc
    taken = Invalid("Username taken.", fields={"username": ["This username is taken."]})
    if User.objects.filter(username__iexact=username).exists():
        raise taken
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password)
            token = Token.objects.create(user=user)
    except IntegrityError as exc:  # a concurrent registration of the same name
        raise taken from exc
    return user, token.key


def user_authenticate(*, username: str, password: str, request: HttpRequest) -> User:
    """The active user with these credentials; Invalid otherwise (one message for both cases).

    Raises RateLimited (with ``retry_after``) while the username is locked out from the
    request's address after ``SPHERE_LOGIN_FAILURE_LIMIT`` failures (django-axes counts them).
    """
    user = authenticate(request, username=username, password=password)
    if user is None and getattr(request, "axes_locked_out", False):
        # django-axes refused before checking the password (Django's authenticate turns its
        # PermissionDenied into None and leaves the mark on the request).
        raise RateLimited(
            "Too many failed logins; try again later.",
            retry_after=settings.AXES_COOLOFF_TIME.total_seconds(),
        )
    if user is None:
        raise Invalid(
            "Wrong username or password.",
            fields={"non_field_errors": ["Wrong username or password."]},
        )
    return user


def token_issue(*, user: User) -> str:
    """The user's API token: made on the first call, the same one on every later call."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def ws_ticket_issue(*, user: User) -> tuple[str, int]:
    """A single-use WebSocket ticket valid ``WS_TICKET_TTL_S`` seconds; only its digest is
    stored, so a database read does not reveal usable tickets."""
    ttl = settings.WS_TICKET_TTL_S
    ticket = secrets.token_urlsafe(32)
    now = timezone.now()
    WsTicket.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()
    WsTicket.objects.create(
        digest=_digest(ticket), user=user, expires_at=now + timedelta(seconds=ttl)
    )
    return ticket, ttl


def ws_ticket_of_disabled_account(*, ticket: str) -> bool:
    """Whether ``ticket`` was issued to an account now disabled. ``ws_ticket_redeem`` answers
    None for it as for a forged one; the socket tells the client the difference (4509: do not
    reconnect, rather than 4401: get a new ticket)."""
    if not ticket or len(ticket) > 128:
        return False
    return WsTicket.objects.filter(digest=_digest(ticket), user__is_active=False).exists()


def ws_tickets_issue_many(
    *, user_ids: list[int], per_user: int, ttl_s: int | None = None
) -> dict[int, list[str]]:
    """``per_user`` single-use tickets for each user, stored in one bulk insert (a load
    harness connecting thousands of clients, or reconnecting them, issues them up front).
    Valid ``ttl_s`` seconds (default ``WS_TICKET_TTL_S``)."""
    ttl = settings.WS_TICKET_TTL_S if ttl_s is None else ttl_s
    expires_at = timezone.now() + timedelta(seconds=ttl)
    issued: dict[int, list[str]] = {user_id: [] for user_id in user_ids}
    rows = []
    for user_id in user_ids:
        for _ in range(per_user):
            ticket = secrets.token_urlsafe(32)
            issued[user_id].append(ticket)
            rows.append(WsTicket(digest=_digest(ticket), user_id=user_id, expires_at=expires_at))
    WsTicket.objects.bulk_create(rows, batch_size=2000)
    return issued


def ws_ticket_redeem(*, ticket: str) -> User | None:
    """The ticket's active user, marking it used; None for a bad, used or expired ticket.

    The conditional update makes redemption atomic: of two concurrent handshakes with one
    ticket, exactly one wins. On PostgreSQL the update returns the user in the same statement
    (every connection that opens redeems one: one round trip, and no ORM query to build).
    """
    if not ticket or len(ticket) > 128:
        return None
    now = timezone.now()
    digest = _digest(ticket)
    if connection.vendor == "postgresql":
        tickets, users = (connection.ops.quote_name(m._meta.db_table) for m in (WsTicket, User))
        found = list(
            User.objects.raw(
                f"WITH won AS (UPDATE {tickets} SET used_at = %s"  # noqa: S608 (params only)
                " WHERE digest = %s AND used_at IS NULL AND expires_at > %s RETURNING user_id)"
                f" SELECT u.* FROM {users} u JOIN won ON u.id = won.user_id",
                [now, digest, now],
            )
        )
        user = found[0] if found else None
    else:
        won = WsTicket.objects.filter(
            digest=digest, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        user = WsTicket.objects.select_related("user").get(digest=digest).user if won else None
    return user if user is not None and user.is_active else None
