from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from communities.models import AuditEntry, Community


def audit_record(
    *,
    actor: User,
    community: Community,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Record one moderation or administration act; call inside the act's transaction."""
    return AuditEntry.objects.create(
        community=community,
        community_slug=community.slug,
        actor=actor,
        action=action,
        target=target,
        detail=detail or {},
    )


def user_target(user: User) -> str:
    return f"user:{user.pk}"
