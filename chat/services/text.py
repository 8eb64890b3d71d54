"""The checks of client text that the chat services store, in one place for REST and the
socket (docs/api.md, "Text fields"). PostgreSQL refuses NUL in text and a lone surrogate is
not UTF-8: such input is refused here as ``invalid``, never left to fail in the database."""

from __future__ import annotations

import unicodedata

from sphere.errors import Invalid

MAX_CLIENT_MSG_ID = 64


def is_control(ch: str) -> bool:
    """A control character (Unicode category Cc: NUL, C0 and C1 controls, tab and newline
    included) or a lone surrogate (Cs), which no stored text may hold."""
    return unicodedata.category(ch) in ("Cc", "Cs")


def refuse_unstorable(value: str, *, field: str) -> str:
    """``value`` unchanged; Invalid naming ``field`` when it holds NUL or a surrogate."""
    if "\x00" in value or any(unicodedata.category(ch) == "Cs" for ch in value):
        raise Invalid(
            f"{field} holds a NUL or surrogate character.",
            fields={field: ["No NUL or surrogate characters."]},
        )
    return value


def clean_client_msg_id(client_msg_id: str) -> str:
    """A send's ``client_msg_id``: 1 to 64 characters, no control character or lone surrogate
    (``is_control``). Invalid otherwise. Other characters stay allowed, so that an id stored
    before this check was made keeps answering its repeats with the original message."""
    if not 1 <= len(client_msg_id) <= MAX_CLIENT_MSG_ID or any(
        is_control(ch) for ch in client_msg_id
    ):
        raise Invalid(
            "client_msg_id is 1 to 64 characters, with no control characters.",
            fields={
                "client_msg_id": [
                    "1 to 64 characters; no control character (NUL, tab, newline...) or lone "
                    "surrogate."
                ]
            },
        )
    return client_msg_id
