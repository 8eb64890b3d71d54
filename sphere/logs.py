"""Secrets kept out of the logs (docs/operations.md, "Logs"): invite codes in paths
(``/api/v1/invites/<code>/accept``, ``/api/v1/communities/<slug>/invites/<code>/``) and socket
tickets in query strings (``?ticket=``) are replaced with ``[redacted]``.

Two ways in: :class:`RedactSecrets`, a filter on the console handler of ``LOGGING`` (every
record that reaches it, Django's request and server logs included), and
:func:`redact_access_log`, which wraps the one writer of daphne's access log (daphne writes
it straight to a stream, not through ``logging``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

PLACEHOLDER = "[redacted]"

_SECRETS = re.compile(r"(?P<keep>/invites/|[?&]ticket=)(?P<secret>[^/?&#\s\"']+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every invite code in a path and every ticket in a query replaced."""
    if "invites/" not in text and "=" not in text:
        return text
    return _SECRETS.sub(lambda m: m.group("keep") + PLACEHOLDER, text)


class RedactSecrets(logging.Filter):
    """Redacts the formatted message of a record (its arguments merged in, so a path passed as
    an argument is caught too); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: left to the handler to report
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_access_log() -> None:
    """Route daphne's access log (``AccessLogGenerator.write_entry``, the one place its lines
    are written) through :func:`redact`. Idempotent; tested against a real daphne
    (tests/test_logs.py), as its internals may move."""
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # served by another ASGI server
        return
    write_entry = AccessLogGenerator.write_entry
    if getattr(write_entry, "sphere_redacts", False):
        return

    def redacting(self: Any, host: Any, date: Any, request: str, *args: Any, **kw: Any) -> Any:
        return write_entry(self, host, date, redact(str(request)), *args, **kw)

    redacting.sphere_redacts = True  # type: ignore[attr-defined]
    AccessLogGenerator.write_entry = redacting
