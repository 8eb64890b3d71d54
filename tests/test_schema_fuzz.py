"""Property-based check of the API against its own OpenAPI schema (schemathesis, in process).

Every operation of ``/api/schema/`` is fuzzed through the WSGI application in the test's own
thread, so that it sees the test's database transaction: no server, no network. It runs as an
admin of a private community, as a plain member of it (refused most writes: permission answers
must come before validation), and as a user who belongs to no community.

Path parameters (and the ``user_id`` of a body) name real objects most of the time and take the
generated value otherwise, so that the fuzzing reaches past the 404s. Each example runs in a
savepoint that is rolled back: a destructive call (leave, delete, ban) never changes the next
example's starting point, and a failure replays the same way while Hypothesis shrinks it.

Checks: no 5xx, and status code, content type and body all as the schema documents them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chat.services import reactions, reports
from chat.services.messages import message_post
from communities.models import Invite, JoinRequest
from tests.conftest import build_world
from tests.factories import UserFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
# Examples per operation, by standing: the admin reaches the most code; the member and the
# outsider are refused most writes early. The sum keeps the suite's run time (it runs twice in
# CI, embedded and scaled) where it was with two standings at 20.
MAX_EXAMPLES = {"admin": 20, "member": 10, "outsider": 8}


@pytest.fixture
def _wsgi_keeps_connection() -> Iterator[None]:
    """The WSGI handler closes "old" connections around each request; inside the test's
    transaction that would drop it. Django's own test client disconnects the same receivers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _arrange(standing: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The caller's headers, and the real values each path parameter (and the page) may take."""
    home = build_world("private")  # the caller's community: as an admin, a member, an outsider
    other = build_world("public")  # a community the caller does not belong to either way
    caller = home.users[standing]
    asker = UserFactory()
    pending = JoinRequest.objects.create(community=home.community, user=asker)
    codes = [
        Invite.objects.create(
            community=world.community,
            code=f"fuzz-{world.community.pk}",
            created_by=world.users["owner"],
        ).code
        for world in (home, other)
    ]
    users = {user.pk for world in (home, other) for user in world.users.values()}
    users |= {home.target.pk, other.target.pk, asker.pk}
    rooms = [room.pk for world in (home, other) for room in (world.general, world.private_room)]
    # Messages (one of the caller's own where they may post), a reaction and a report, so that
    # the message, reaction and report operations reach past their 404s too.
    posters = [(home, home.users["member"]), (other, other.users["member"])]
    if standing != "outsider":
        posters.append((home, caller))
    messages = [
        message_post(
            actor=author, room=world.general, body="fuzz 👍", client_msg_id=f"fuzz-{author.pk}"
        )[0]
        for world, author in posters
    ]
    reactions.reaction_add(actor=home.users["member"], message=messages[0], emoji="👍")
    report = reports.report_create(
        actor=home.target,
        message=messages[0],
        reason="fuzz",
    )
    token, _ = Token.objects.get_or_create(user=caller)
    values = {
        "slug": [home.community.slug, other.community.slug],
        "user_id": [str(pk) for pk in sorted(users)],
        "room_id": [str(pk) for pk in rooms],
        "request_id": [str(pending.pk)],
        "message_id": [str(message.pk) for message in messages],
        "report_id": [str(report.pk)],
        "emoji": ["👍", "🎉"],
        "code": codes,
        "page": ["1"],
    }
    return {"Authorization": f"Token {token.key}"}, values


def _declared_properties(schema: Any, operation: Any) -> set[str] | None:
    """The properties the JSON request body of ``operation`` declares, if it has one."""
    raw = schema.raw_schema
    body = raw["paths"][operation.path][operation.method.lower()].get("requestBody", {})
    ref = body.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    if ref is None:
        return None
    return set(raw["components"]["schemas"][ref.rsplit("/", 1)[-1]].get("properties", {}))


def _fuzz(
    schema: Any,
    operation: Any,
    headers: dict[str, str],
    values: dict[str, list[str]],
    max_examples: int,
) -> None:
    strategies = {mode: operation.as_strategy(generation_mode=mode) for mode in MODES}
    declared = _declared_properties(schema, operation)

    def real(data: st.DataObject, name: str) -> str | None:
        if not values.get(name):
            return None
        if data.draw(st.integers(0, 3), label=f"{name}: generated if 3") == 3:
            return None
        return data.draw(st.sampled_from(values[name]), label=name)

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        mode = data.draw(st.sampled_from(MODES), label="mode")
        case = data.draw(strategies[mode], label="case")
        for name in sorted(case.path_parameters or {}):
            value = real(data, name)
            if value is not None:
                case.path_parameters[name] = value
        # Lists answer 404 for a page past the end (and 400 below 1), which almost any
        # generated page number is.
        if isinstance(case.query, dict) and "page" in case.query:
            value = real(data, "page")
            if value is not None:
                case.query["page"] = int(value)
        if isinstance(case.body, dict):
            # The schema does not say that bodies with unknown properties are refused (they
            # are, with 400), so half of the valid bodies keep only the declared ones.
            if (
                mode is GenerationMode.POSITIVE
                and declared is not None
                and data.draw(st.booleans(), label="declared properties only")
            ):
                case.body = {key: val for key, val in case.body.items() if key in declared}
            # Bans and room members name their user in the body.
            if isinstance(case.body.get("user_id"), int):
                value = real(data, "user_id")
                if value is not None:
                    case.body["user_id"] = int(value)
        with transaction.atomic():
            try:
                case.call_and_validate(headers=headers, checks=CHECKS)
            finally:
                transaction.set_rollback(True)

    run()


def _describe(exc: BaseException) -> str:
    """Schemathesis' own report of a failure, with its curl line; the groups Hypothesis makes
    (several distinct failures, a flaky one) are opened up."""
    if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, FailureGroup):
        inner = "\n".join(_describe(each) for each in exc.exceptions)
        return f"{type(exc).__name__}: {exc.message}\n{inner}"
    if not str(exc) and exc.__cause__ is not None:  # Hypothesis' wrapper of a BaseException
        return _describe(exc.__cause__)
    if isinstance(exc, AssertionError | FailureGroup):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@pytest.mark.django_db
@pytest.mark.usefixtures("_wsgi_keeps_connection")
@pytest.mark.parametrize("standing", list(MAX_EXAMPLES))
def test_api_conforms_to_its_schema(standing: str) -> None:
    # What ``sphere.wsgi.application`` is, built anew: a handler reads settings such as
    # SECURE_SSL_REDIRECT into its middleware when it is created, and the module's own handler
    # was created before this test's settings applied.
    application = get_wsgi_application()
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    headers, values = _arrange(standing)
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation schemathesis cannot read is a failure too
            failures.append(f"unreadable operation: {result.err()}")
            continue
        operation = result.ok()
        tested += 1
        try:
            _fuzz(schema, operation, headers, values, MAX_EXAMPLES[standing])
        except (Exception, FailureGroup) as exc:  # report every operation's failures at once
            failures.append(f"{operation.label}\n{_describe(exc)}")
    assert tested > 30, f"only {tested} operations in the schema"
    assert not failures, f"{len(failures)} operation(s) failed as {standing}:\n\n" + "\n\n".join(
        failures
    )
