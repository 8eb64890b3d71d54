"""Automod terms per community: ``block`` terms refuse a message (``blocked_content``), ``flag``
terms let it through and open a report. Matching (whole words, any case) is in
``chat.services.limits.automod``; this module changes the lists, moderators and up, audited.
Terms without a community are the site's, applied in direct messages (docs/dms.md): only
superusers change them, and they have no community's audit log to be recorded in."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from chat.models import BlockedTerm
from communities.models import Community
from communities.roles import Role
from communities.services.access import require_role
from communities.services.audit import audit_record
from sphere.errors import Conflict, Forbidden, Invalid

MAX_TERM = 100
# A term is words separated by single spaces: matched as whole words, it must start and end
# with a word character.
_TERM = re.compile(r"^\w(?:[\w' -]*\w)?$")


def clean_term(term: str) -> str:
    """The term as stored: trimmed, inner runs of spaces made one, lower case. Invalid when
    empty, too long, or not made of words."""
    term = " ".join(str(term).split()).lower()
    if not term or len(term) > MAX_TERM or not _TERM.match(term):
        raise Invalid(
            "A term is 1 to 100 characters of words.",
            fields={"term": ["Letters, digits, spaces, hyphens or apostrophes; whole words."]},
        )
    return term


def _clean_action(action: str) -> str:
    if action not in BlockedTerm.Action.values:
        raise Invalid("Unknown action.", fields={"action": ["block or flag."]})
    return action


def _require_term_editor(actor: User, community: Community | None) -> None:
    if community is None:
        if not actor.is_superuser:
            raise Forbidden("Only site staff change the site's terms.")
        return
    require_role(actor=actor, community=community, minimum=Role.MODERATOR)


def _audit(actor: User, community: Community | None, **entry: Any) -> None:
    if community is not None:
        audit_record(actor=actor, community=community, **entry)


def blocked_term_add(
    *, actor: User, community: Community | None, term: str, action: str
) -> BlockedTerm:
    """Add a term (moderators and up). Raises Invalid, Conflict (the term is listed already),
    Forbidden/NotFound as ``require_role``. Records ``automod.term_add``."""
    term, action = clean_term(term), _clean_action(action)
    try:
        with transaction.atomic():
            _require_term_editor(actor, community)
            made = BlockedTerm.objects.create(community=community, term=term, action=action)
            _audit(
                actor=actor,
                community=community,
                action="automod.term_add",
                target=f"term:{made.pk}",
                detail={"term": term, "action": action},
            )
    except IntegrityError as exc:
        raise Conflict("This term is listed already.") from exc
    return made


def blocked_term_change(
    *, actor: User, blocked: BlockedTerm, term: str, action: str
) -> BlockedTerm:
    """Change a term or what it does. Records ``automod.term_change``."""
    term, action = clean_term(term), _clean_action(action)
    try:
        with transaction.atomic():
            _require_term_editor(actor, blocked.community)
            before = {"term": blocked.term, "action": blocked.action}
            blocked.term, blocked.action = term, action
            blocked.save(update_fields=["term", "action"])
            _audit(
                actor=actor,
                community=blocked.community,
                action="automod.term_change",
                target=f"term:{blocked.pk}",
                detail={"before": before, "after": {"term": term, "action": action}},
            )
    except IntegrityError as exc:
        raise Conflict("This term is listed already.") from exc
    return blocked


def blocked_term_remove(*, actor: User, blocked: BlockedTerm) -> None:
    """Remove a term. Records ``automod.term_remove``."""
    with transaction.atomic():
        _require_term_editor(actor, blocked.community)
        _audit(
            actor=actor,
            community=blocked.community,
            action="automod.term_remove",
            target=f"term:{blocked.pk}",
            detail={"term": blocked.term, "action": blocked.action},
        )
        blocked.delete()
