"""The WebSocket protocol v1: every frame type defined once.

Client frames are decoded once with msgspec into these Structs (unknown fields, unknown types
and wrong types are refused); server frames are encoded with msgspec. The AsyncAPI document at
``/api/asyncapi.json`` is generated from these types.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

PROTOCOL = 1
MAX_FRAME = 64 * 1024

# Close codes (docs/protocol.md, "Closing codes"). 4500-4999: the client must not reconnect.
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013  # the fan-out registry is out of reach: reconnect later
CLOSE_BAD_TICKET = 4401
CLOSE_HEARTBEAT = 4408
CLOSE_SLOW = 4429
CLOSE_TOO_MANY = 4430  # the user holds WS_MAX_PER_USER sockets already: reconnect later
CLOSE_DISABLED = 4509

Id = Annotated[int, Meta(ge=1, le=2**62)]
Seq = Annotated[int, Meta(ge=0, le=2**62)]
Ref = Annotated[str, Meta(max_length=64)]
ClientMsgId = Annotated[str, Meta(min_length=1, max_length=64)]
Body = Annotated[str, Meta(max_length=16_000)]  # trimmed and checked for 1..4000 by the service
Emoji = Annotated[str, Meta(min_length=1, max_length=64)]


class ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    ref: Ref | None = None


class MessageSend(ClientFrame, tag="message.send"):
    room: Id
    client_msg_id: ClientMsgId
    body: Body
    reply_to: Id | None = None
    thread_root: Id | None = None


class MessageEdit(ClientFrame, tag="message.edit"):
    message_id: Id
    body: Body


class MessageDelete(ClientFrame, tag="message.delete"):
    message_id: Id


class ReactionAdd(ClientFrame, tag="reaction.add"):
    message_id: Id
    emoji: Emoji


class ReactionRemove(ClientFrame, tag="reaction.remove"):
    message_id: Id
    emoji: Emoji


class Typing(ClientFrame, tag="typing"):
    room: Id


class Read(ClientFrame, tag="read"):
    room: Id
    seq: Seq


class Sync(ClientFrame, tag="sync"):
    rooms: dict[Annotated[str, Meta(pattern=r"^[1-9][0-9]{0,17}$")], Seq]


class Ping(ClientFrame, tag="ping"):
    pass


AnyClientFrame = (
    MessageSend
    | MessageEdit
    | MessageDelete
    | ReactionAdd
    | ReactionRemove
    | Typing
    | Read
    | Sync
    | Ping
)
_decoder = msgspec.json.Decoder(AnyClientFrame)
_encoder = msgspec.json.Encoder()


class BadFrame(Exception):
    """Not JSON, not an object, an unknown type, or missing or wrong fields."""


def decode(data: str | bytes) -> AnyClientFrame:
    try:
        return _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise BadFrame(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise BadFrame("Not a JSON object.") from exc
    except (RecursionError, ValueError, UnicodeError) as exc:  # e.g. absurdly deep nesting
        raise BadFrame("Not a frame this server can read.") from exc


def encode(frame: Any) -> bytes:
    return _encoder.encode(frame)


def ref_of(data: str | bytes) -> str | None:
    """The ``ref`` of a frame that failed to decode, when it has a usable one."""
    try:
        raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError, ValueError, UnicodeError):
        return None
    ref = raw.get("ref") if isinstance(raw, dict) else None
    return ref if isinstance(ref, str) and len(ref) <= 64 else None


# --- Server frames (built as these Structs and encoded once) -----------------------------------
#
# The objects that frames carry (docs/protocol.md, "Objects"). The services build Rooms and
# Messages as dicts (one shape for REST and the socket, encoded once per event), and the encoder
# takes a dict where a Struct is declared: these types give the frames, and the AsyncAPI
# document, their real schema without a conversion on the hot path.

Timestamp = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]


class User(msgspec.Struct):
    id: int
    username: str


class Room(msgspec.Struct, kw_only=True):
    """A room as the reader sees it: `community` is its community's slug (null for a DM),
    `unread` counts the messages of others after the reader's read marker; a DM (`kind`
    "dm") lists its `members`, the reader included (null for a channel)."""

    id: int
    kind: Literal["channel", "dm"] = "channel"
    community: str | None
    members: list[User] | None = None
    name: str
    topic: str
    private: bool
    slow_mode_s: int
    head_seq: int
    unread: int
    created_at: Timestamp


class Reaction(msgspec.Struct, kw_only=True):
    """One emoji on a message; `me` is always false in broadcast frames."""

    emoji: str
    count: int
    me: bool


class ThreadSummary(msgspec.Struct, kw_only=True):
    """A root's thread: its replies, the last one's time, the repliers (first reply first)."""

    reply_count: int
    last_reply_at: Timestamp
    participants: list[int]


class Message(msgspec.Struct, kw_only=True):
    """`seq` is the seq of its `message.new`; `event_seq` the seq of the last event that
    changed it (apply an event to a message you hold only when the event's seq is higher). A
    deleted message keeps its id and seq, with `deleted` true and an empty body."""

    id: int
    room: int
    seq: int
    event_seq: int
    author: User
    body: str
    reply_to: int | None
    thread_root: int | None = None
    thread: ThreadSummary | None = None
    mentions: list[int]
    reactions: list[Reaction]
    created_at: Timestamp
    edited_at: Timestamp | None
    deleted: bool


class ServerFrame(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    pass


class Hello(ServerFrame, tag="hello"):
    """`online`: the users sharing a room of at most PRESENCE_MAX_ROOM members with the
    caller who are connected now, the caller excepted, sorted."""

    protocol: int
    user: User
    heartbeat_s: int
    rooms: list[Room]
    online: list[int]


class Ack(ServerFrame, tag="ack"):
    """`client_msg_id` and `message_id` for a send, `message_id` for an edit, delete or
    reaction, `room` for a read; `seq` for each."""

    ref: str | None = None
    client_msg_id: str | None = None
    message_id: int | None = None
    room: int | None = None
    seq: int | None = None


class Error(ServerFrame, tag="error"):
    """`retry_after` (seconds) with `rate_limited` and `slow_mode`; `muted_until` with
    `muted`: when the mute ends."""

    code: str
    message: str
    ref: str | None = None
    retry_after: float | None = None
    muted_until: Timestamp | None = None


class Synced(ServerFrame, tag="synced"):
    rooms: dict[str, int]
    ref: str | None = None


class Pong(ServerFrame, tag="pong"):
    ref: str | None = None


class TypingEvent(ServerFrame, tag="typing"):
    room: int
    user: User


class ReadEvent(ServerFrame, tag="read"):
    room: int
    seq: int


class Presence(ServerFrame, tag="presence"):
    user: User
    status: Literal["online", "offline"]


class RoomAdded(ServerFrame, tag="room.added"):
    room: int
    info: Room


class RoomUpdated(ServerFrame, tag="room.updated"):
    room: int
    info: Room


RemovedReason = Literal["left", "kicked", "banned", "removed", "deleted"]


class RoomRemoved(ServerFrame, tag="room.removed"):
    room: int
    reason: RemovedReason


class RoomResync(ServerFrame, tag="room.resync"):
    room: int
    from_seq: int


class MessageNew(ServerFrame, tag="message.new"):
    room: int
    seq: int
    message: Message


class MessageEdited(ServerFrame, tag="message.edited"):
    room: int
    seq: int
    message: Message


class MessageDeleted(ServerFrame, tag="message.deleted"):
    room: int
    seq: int
    message_id: int


class ReactionAdded(ServerFrame, tag="reaction.added"):
    room: int
    seq: int
    message_id: int
    emoji: str
    user: User


class ReactionRemoved(ServerFrame, tag="reaction.removed"):
    room: int
    seq: int
    message_id: int
    emoji: str
    user: User


class ThreadUpdated(ServerFrame, tag="thread.updated"):
    """A root's thread changed (a reply was posted): its new summary. A room event with its
    own seq, right after the reply's `message.new`."""

    room: int
    seq: int
    message_id: int
    thread: ThreadSummary


CLIENT_FRAMES = [
    MessageSend,
    MessageEdit,
    MessageDelete,
    ReactionAdd,
    ReactionRemove,
    Typing,
    Read,
    Sync,
    Ping,
]
SERVER_FRAMES = [
    Hello,
    Ack,
    Error,
    Synced,
    Pong,
    TypingEvent,
    ReadEvent,
    Presence,
    RoomAdded,
    RoomUpdated,
    RoomRemoved,
    RoomResync,
    MessageNew,
    MessageEdited,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
    ThreadUpdated,
]
