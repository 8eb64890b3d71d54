"""Secrets never reach the logs (docs/operations.md, "Logs"): invite codes in paths and socket
tickets in query strings, in daphne's access log and in Django's logging output alike."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from sphere.logs import PLACEHOLDER, redact
from tests.live_daphne import Daphne, daphne

CODE = "SeCrEtInViTe42"
TICKET = "TiCkEtSeCrEt77"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    var: Path = tmp_path_factory.mktemp("logs")
    with daphne(var, "-v", "1") as live:
        yield live


def test_the_access_log_never_names_an_invite_code(server: Daphne) -> None:
    assert server.get(f"/api/v1/invites/{CODE}/accept", method="POST")[0] == 401
    assert server.get(f"/api/v1/invites/{CODE}")[0] == 401
    assert server.get(f"/api/v1/communities/some-place/invites/{CODE}/")[0] == 401
    text = server.wait_for(lambda out: out.count(f"/invites/{PLACEHOLDER}") >= 3)
    assert f'"POST /api/v1/invites/{PLACEHOLDER}/accept" 401' in text
    assert f'"GET /api/v1/communities/some-place/invites/{PLACEHOLDER}/" 401' in text
    assert CODE not in text


def test_no_log_line_names_a_socket_ticket(server: Daphne) -> None:
    async def refused() -> int | None:
        uri = server.base.replace("http://", "ws://") + f"/ws/v1/?ticket={TICKET}&v=1"
        async with websockets.connect(uri) as socket:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
        return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(refused()) == 4401
    text = server.wait_for(lambda out: "WSDISCONNECT /ws/v1/" in out)
    assert TICKET not in text


def test_django_log_lines_are_redacted_by_the_configured_handler() -> None:
    """Through the console handler of LOGGING, as a failing request's line would go."""
    handler = next(h for h in logging.getLogger().handlers if h.filters)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        logger = logging.getLogger("django.request")
        logger.error("Internal Server Error: %s", f"/api/v1/invites/{CODE}/accept")
        logging.getLogger("sphere").warning("socket from /ws/v1/?ticket=%s refused", TICKET)
    finally:
        handler.setStream(previous)
    text = stream.getvalue()
    assert f"Internal Server Error: /api/v1/invites/{PLACEHOLDER}/accept" in text
    assert f"/ws/v1/?ticket={PLACEHOLDER} refused" in text
    assert CODE not in text
    assert TICKET not in text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"GET /api/v1/invites/{CODE}", f"GET /api/v1/invites/{PLACEHOLDER}"),
        (f"/api/v1/invites/{CODE}/accept?x=1", f"/api/v1/invites/{PLACEHOLDER}/accept?x=1"),
        ("/api/v1/communities/c/invites/", "/api/v1/communities/c/invites/"),
        (f"/ws/v1/?v=1&ticket={TICKET}&x=2", f"/ws/v1/?v=1&ticket={PLACEHOLDER}&x=2"),
        ("/api/v1/communities/c/rooms/", "/api/v1/communities/c/rooms/"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected
