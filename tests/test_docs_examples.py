"""The examples of docs/api.md ("Examples") replayed against the server, in order.

Each fenced ``http`` block that starts with a method is a request; the ``http`` block after it
(``HTTP/1.1 <status> ...``) is its answer. The replay checks the status, the answer's keys at
every level, the type of every value, and the value itself except where it is the server's to
choose (ids, tokens, tickets, times). Ids, slugs and tokens the docs show are learned from each
answer (the docs' value → the server's) and put into the later requests, so the docs can use
readable values (``/rooms/1/messages``) and still be replayed on any database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
_BLOCK = re.compile(r"^```http\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# Values the server chooses: learned (ids, slugs, tokens) or only typed (times).
_LEARNED = {"id", "room", "slug", "token", "ticket"}
_CHOSEN = _LEARNED | {"reach", "shares"}


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    answer: Any
    line: int = 0


@dataclass
class Learned:
    values: dict[str, str] = field(default_factory=dict)

    def learn(self, documented: Any, real: Any, key: str = "") -> None:
        if isinstance(documented, dict) and isinstance(real, dict):
            for name in documented.keys() & real.keys():
                self.learn(documented[name], real[name], name)
        elif isinstance(documented, list) and isinstance(real, list):
            for doc_item, real_item in zip(documented, real, strict=False):
                self.learn(doc_item, real_item, key)
        elif key in _LEARNED and documented is not None and real is not None:
            self.values[str(documented)] = str(real)

    def path(self, path: str) -> str:
        route, _, query = path.partition("?")
        segments = [self.values.get(segment, segment) for segment in route.split("/")]
        return "/".join(segments) + (f"?{query}" if query else "")

    def text(self, value: str) -> str:
        for documented, real in self.values.items():
            if len(documented) > 8:  # tokens and tickets only: never a short id inside text
                value = value.replace(documented, real)
        return value


def _split(block: str) -> tuple[str, dict[str, str], Any]:
    head, _, body = block.partition("\n\n")
    first, *lines = head.splitlines()
    headers = dict(line.split(": ", 1) for line in lines)
    return first, headers, json.loads(body) if body.strip() else None


def exchanges(text: str) -> list[Exchange]:
    """The docs' request/answer pairs, in order; a request without its answer is an error."""
    found: list[Exchange] = []
    pending: tuple[str, dict[str, str], Any, int] | None = None
    for match in _BLOCK.finditer(text):
        first, headers, body = _split(match.group(1))
        line = text.count("\n", 0, match.start()) + 1
        if first.startswith("HTTP/1.1 "):
            assert pending is not None, f"docs/api.md:{line}: an answer without a request"
            request_line, request_headers, request_body, request_at = pending
            method, path = request_line.split(" ", 1)
            status = int(first.split()[1])
            found.append(
                Exchange(method, path, request_headers, request_body, status, body, request_at)
            )
            pending = None
        else:
            assert pending is None, f"docs/api.md:{line}: a request follows an unanswered one"
            pending = (first, headers, body, line)
    assert pending is None, "docs/api.md: the last request has no answer"
    return found


def _differences(documented: Any, real: Any, where: str = "") -> list[str]:
    """How ``real`` differs from ``documented`` in shape, types and fixed values."""
    key = where.rsplit(".", 1)[-1]
    if isinstance(documented, dict):
        if not isinstance(real, dict):
            return [f"{where or 'answer'}: an object in the docs, {real!r} from the server"]
        problems = []
        if documented.keys() != real.keys():
            problems.append(
                f"{where or 'answer'}: keys {sorted(documented)} in the docs, "
                f"{sorted(real)} from the server"
            )
        for name in documented.keys() & real.keys():
            problems += _differences(documented[name], real[name], f"{where}.{name}")
        return problems
    if isinstance(documented, list):
        if not isinstance(real, list) or len(real) != len(documented):
            return [f"{where}: {documented!r} in the docs, {real!r} from the server"]
        problems = []
        for index, (doc_item, real_item) in enumerate(zip(documented, real, strict=True)):
            problems += _differences(doc_item, real_item, f"{where}[{index}]")
        return problems
    if type(documented) is not type(real) and not (documented is None or real is None):
        return [f"{where}: {documented!r} in the docs, {real!r} from the server"]
    if (documented is None) != (real is None) and not key.endswith("_at"):
        return [f"{where}: {documented!r} in the docs, {real!r} from the server"]
    if key in _CHOSEN or key.endswith("_at"):
        return []
    if documented != real:
        return [f"{where}: {documented!r} in the docs, {real!r} from the server"]
    return []


def test_the_docs_have_examples() -> None:
    found = exchanges(DOC.read_text())
    assert len(found) >= 10
    assert {each.method for each in found} >= {"GET", "POST", "PUT"}
    assert {each.status for each in found} >= {200, 201, 400, 404}


@pytest.mark.django_db
def test_the_docs_examples_replay_as_written() -> None:
    learned = Learned()
    client = APIClient()
    for each in exchanges(DOC.read_text()):
        headers = {
            f"HTTP_{name.upper().replace('-', '_')}": learned.text(value)
            for name, value in each.headers.items()
            if name != "Content-Type"
        }
        response = client.generic(
            each.method,
            learned.path(each.path),
            data=json.dumps(each.body) if each.body is not None else "",
            content_type=each.headers.get("Content-Type", "application/json"),
            **headers,
        )
        label = f"docs/api.md:{each.line}: {each.method} {each.path}"
        assert response.status_code == each.status, (
            f"{label}: {response.status_code} {response.content!r}"
        )
        answer = response.json()
        problems = _differences(each.answer, answer)
        assert not problems, f"{label}:\n" + "\n".join(problems)
        learned.learn(each.answer, answer)


PROTOCOL_DOC = DOC.with_name("protocol.md")


def worked_session() -> list[tuple[str, str, bool]]:
    """The frames of docs/protocol.md's worked session: (direction, JSON text, whether an
    object in it is elided as ``{…}``, read as null), with wrapped lines joined and trailing
    remarks dropped; the connect line is not a frame."""
    text = PROTOCOL_DOC.read_text()
    session = text.split("## A worked session", 1)[1].split("```", 2)[1]
    frames: list[list[str]] = []
    for line in session.splitlines():
        if line.startswith(("→ ", "← ")):
            frames.append([line[:1], line[2:]])
        elif line.startswith(" ") and frames:
            frames[-1][1] += line.strip()
    decoder = json.JSONDecoder()
    found = []
    for direction, raw in frames:
        if raw.startswith("("):
            continue
        text = raw.replace("{…}", "null")
        _, end = decoder.raw_decode(text)
        found.append((direction, text[:end], "{…}" in raw))
    return found


def test_the_worked_session_has_the_servers_frames_byte_for_byte() -> None:
    import msgspec

    from chat import protocol

    server_frames = msgspec.json.Decoder(_union(protocol.SERVER_FRAMES))
    frames = worked_session()
    assert len(frames) >= 10
    checked = 0
    for direction, raw, elided in frames:
        if direction == "→":
            protocol.decode(raw)  # a frame the server reads (BadFrame otherwise)
        elif elided:
            assert json.loads(raw)["type"] in {"message.new", "message.edited"}, raw
        else:
            # The frame as the server's types read it, and as the server writes it again.
            assert protocol.encode(server_frames.decode(raw)).decode() == raw, raw
            checked += 1
    assert checked >= 6


def _union(types: list[Any]) -> Any:
    union = types[0]
    for each in types[1:]:
        union = union | each
    return union
