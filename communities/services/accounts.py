"""Accounts: registration, API tokens and their revocation, WebSocket tickets, and closing the
sockets of a disabled account or a revoked token (docs/protocol.md, "Closing codes")."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, password_validation
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from communities.models import WsTicket
from fanout.publish import publish_close
from sphere.errors import Invalid, RateLimited

USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{3,32}$")

# The close codes of docs/protocol.md that the accounts cause (the gateway's protocol module
# names the same numbers).
CLOSE_CREDENTIAL_REVOKED = 4401  # authenticate again
CLOSE_DISABLED = 4509  # do not reconnect


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
    """The user's API token: made on the first call, the same one on every later call (a new
    one after a revocation)."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def token_reference(key: str) -> str:
    """A non-secret reference of an API token (what a ticket issued with it records): its
    digest. Never the token itself."""
    return hashlib.sha256(key.encode()).hexdigest()


def token_revoke(*, user: User, key: str) -> None:
    """Revoke the user's API token ``key`` at once: it stops authenticating, the tickets it
    got and did not use yet stop working, and on commit the sockets opened with its tickets
    close with 4401 in every gateway (the user's other sockets stay open). Revoking a token
    already gone does nothing more."""
    reference = token_reference(key)
    user_id = user.pk
    with transaction.atomic():
        Token.objects.filter(user_id=user_id, key=key).delete()
        WsTicket.objects.filter(user_id=user_id, credential=reference).delete()
        transaction.on_commit(
            lambda: publish_close(
                user_ids=[user_id], code=CLOSE_CREDENTIAL_REVOKED, credential=reference
            )
        )


def socket_refusal(*, user_id: int, credential: str) -> int | None:
    """Checked once a socket is registered with the gateway (so that a disable or revocation
    committed before it is seen here, and one committed after it reaches the socket as a
    close): the close code when the account is disabled or gone (4509), or when the token the
    socket's ticket was issued with (``credential``, empty for a session) is revoked (4401);
    None when the socket may stay. One query."""
    row = User.objects.filter(pk=user_id).values_list("is_active", "auth_token__key").first()
    if row is None or not row[0]:
        return CLOSE_DISABLED
    if credential and (row[1] is None or token_reference(row[1]) != credential):
        return CLOSE_CREDENTIAL_REVOKED
    return None


def user_saved(*, sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    """A ``post_save`` receiver of the user model: an account saved disabled (from the admin,
    a service or any ``save()``) has its open sockets closed with 4509 in every gateway once
    the change commits. A save of other fields (``update_fields`` without ``is_active``) does
    nothing."""
    if created or instance.is_active:
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "is_active" not in update_fields:
        return
    user_id = instance.pk
    transaction.on_commit(lambda: publish_close(user_ids=[user_id], code=CLOSE_DISABLED))


def user_deleted(*, sender: Any, instance: User, **kwargs: Any) -> None:
    """A ``post_delete`` receiver of the user model: a deleted account's open sockets close
    with 4509 once the deletion commits, as a disabled one's."""
    user_id = instance.pk
    transaction.on_commit(lambda: publish_close(user_ids=[user_id], code=CLOSE_DISABLED))


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def ws_ticket_issue(*, user: User, credential: str = "") -> tuple[str, int]:
    """A single-use WebSocket ticket valid ``WS_TICKET_TTL_S`` seconds; only its digest is
    stored, so a database read does not reveal usable tickets. ``credential``: the reference
    (``token_reference``) of the API token the ticket is issued with, empty for a session;
    revoking that token closes the socket the ticket opens."""
    ttl = settings.WS_TICKET_TTL_S
    ticket = secrets.token_urlsafe(32)
    now = timezone.now()
    WsTicket.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()
    WsTicket.objects.create(
        digest=_digest(ticket),
        user=user,
        expires_at=now + timedelta(seconds=ttl),
        credential=credential,
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
    The user carries ``ws_credential``: the reference of the credential the ticket was issued
    with (``ws_ticket_issue``), which the socket keeps.

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
                " WHERE digest = %s AND used_at IS NULL AND expires_at > %s"
                " RETURNING user_id, credential)"
                f" SELECT u.*, won.credential AS ws_credential FROM {users} u"
                " JOIN won ON u.id = won.user_id",
                [now, digest, now],
            )
        )
        user = found[0] if found else None
    else:
        won = WsTicket.objects.filter(
            digest=digest, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        user = None
        if won:
            redeemed = WsTicket.objects.select_related("user").get(digest=digest)
            user = redeemed.user
            user.ws_credential = redeemed.credential  # type: ignore[attr-defined]
    return user if user is not None and user.is_active else None
