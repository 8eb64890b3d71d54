// The shapes the client works with, as JSDoc types only (no code): the objects and frames of
// the WebSocket protocol (docs/protocol.md) and the REST API (docs/api.md), and the page's own
// state. The other modules name them in their JSDoc; nothing imports this one at run time.

// --- objects ---------------------------------------------------------------------------------

/**
 * @typedef {object} User
 * @property {number} id
 * @property {string} username
 */

/**
 * @typedef {object} Reaction
 * @property {string} emoji
 * @property {number} count
 * @property {boolean} me false in broadcast frames (one frame serves every reader)
 */

/**
 * A room as `hello`, `room.added`/`room.updated` and `GET /api/v1/rooms/{id}/` give it.
 * A DM (`kind: "dm"`) has no community, an empty name, and its members (the reader
 * included, by id); a channel's `members` is null.
 * @typedef {object} Room
 * @property {number} id
 * @property {"channel" | "dm"} kind
 * @property {string | null} community the community's slug; null for a DM
 * @property {User[] | null} members a DM's members; null for a channel
 * @property {string} name
 * @property {string} topic
 * @property {boolean} private
 * @property {number} slow_mode_s
 * @property {number} head_seq the seq of the room's last event
 * @property {number} unread messages by others after the reader's read marker
 * @property {string} created_at
 */

/**
 * A room as the page keeps it: the server's Room and what the page learnt since.
 * @typedef {Room & {counted?: number, read_seq?: number}} HeldRoom
 * counted: the head_seq that `hello`'s unread counted up to; read_seq: the read marker.
 */

/**
 * @typedef {object} Message
 * @property {number} id
 * @property {number} room
 * @property {number} seq the seq of its message.new
 * @property {number} event_seq the seq of the last room event that changed it
 * @property {User} author
 * @property {string} body empty once deleted
 * @property {number | null} reply_to a message id
 * @property {number | null} [thread_root] the root's id on a reply; null on a top-level message
 * @property {ThreadSummary | null} [thread] a root's summary; null while it has no reply
 * @property {number[]} mentions user ids
 * @property {Reaction[]} reactions
 * @property {string} created_at
 * @property {string | null} edited_at
 * @property {boolean} deleted
 */

/**
 * A root's thread (docs/threads.md, "What a Message carries").
 * @typedef {object} ThreadSummary
 * @property {number} reply_count
 * @property {string | null} last_reply_at
 * @property {number[]} participants user ids, first reply first
 */

/**
 * `GET /api/v1/messages/{id}/thread`: the root and its replies in seq order.
 * @typedef {object} ThreadPage
 * @property {Message} root
 * @property {Message[]} results
 * @property {boolean} has_more
 */

/**
 * One entry of `GET /api/v1/me/threads`: a followed thread and its unread replies.
 * @typedef {object} FollowedThread
 * @property {Message} root
 * @property {number} unread
 */

/**
 * @typedef {object} Community
 * @property {string} slug
 * @property {string} name
 * @property {string} description
 * @property {"public" | "private"} visibility
 * @property {number} member_count
 * @property {"owner" | "admin" | "moderator" | "member" | null} my_role
 * @property {string} created_at
 */

/**
 * @typedef {object} Member
 * @property {User} user
 * @property {string} role
 * @property {string} joined_at
 * @property {string | null} muted_until
 */

/**
 * `GET /api/v1/rooms/{id}/messages`: newest first, `before_seq` for the page before.
 * @typedef {object} MessagesPage
 * @property {Message[]} results
 * @property {boolean} has_more
 */

// --- frames from the server --------------------------------------------------------------------

/**
 * Right after connecting: the rooms the user can read, with their head and unread count, and
 * who is online among the users sharing a room of at most 500 members (the user excepted).
 * @typedef {object} HelloFrame
 * @property {"hello"} type
 * @property {number} protocol
 * @property {User} user
 * @property {number} heartbeat_s
 * @property {Room[]} rooms
 * @property {number[]} online user ids
 */

/**
 * @typedef {object} MessageNewFrame
 * @property {"message.new"} type
 * @property {number} room
 * @property {number} seq
 * @property {Message} message
 */

/**
 * @typedef {object} MessageEditedFrame
 * @property {"message.edited"} type
 * @property {number} room
 * @property {number} seq
 * @property {Message} message
 */

/**
 * @typedef {object} MessageDeletedFrame
 * @property {"message.deleted"} type
 * @property {number} room
 * @property {number} seq
 * @property {number} message_id
 */

/**
 * reaction.added and reaction.removed.
 * @typedef {object} ReactionFrame
 * @property {"reaction.added" | "reaction.removed"} type
 * @property {number} room
 * @property {number} seq
 * @property {number} message_id
 * @property {string} emoji
 * @property {User} user
 */

/**
 * A root's new summary, right after each reply's message.new.
 * @typedef {object} ThreadUpdatedFrame
 * @property {"thread.updated"} type
 * @property {number} room
 * @property {number} seq
 * @property {number} message_id the root
 * @property {ThreadSummary} thread
 */

/**
 * Another reader is typing (ephemeral, no seq).
 * @typedef {object} TypingFrame
 * @property {"typing"} type
 * @property {number} room
 * @property {User} user
 */

/**
 * Another connection of the same user read the room up to `seq` (a message seq).
 * @typedef {object} ReadFrame
 * @property {"read"} type
 * @property {number} room
 * @property {number} seq
 */

/**
 * @typedef {object} PresenceFrame
 * @property {"presence"} type
 * @property {User} user
 * @property {"online" | "offline"} status
 */

/**
 * room.added (a room gained while connected; its events follow) and room.updated.
 * @typedef {object} RoomInfoFrame
 * @property {"room.added" | "room.updated"} type
 * @property {number} room
 * @property {Room} info
 */

/** @typedef {"left" | "kicked" | "banned" | "removed" | "deleted"} RemovedReason */

/**
 * Nothing more of that room arrives.
 * @typedef {object} RoomRemovedFrame
 * @property {"room.removed"} type
 * @property {number} room
 * @property {RemovedReason} reason
 */

/**
 * The room's live events stopped at `from_seq` on this connection until it is synced again.
 * @typedef {object} RoomResyncFrame
 * @property {"room.resync"} type
 * @property {number} room
 * @property {number} from_seq
 */

/**
 * The answer to an act: `client_msg_id` for a send, `message_id` for an act on a message,
 * `room` for a read marker; `seq` is the message's seq, the room's head, or the marker.
 * @typedef {object} AckFrame
 * @property {"ack"} type
 * @property {string} [ref]
 * @property {string} [client_msg_id]
 * @property {number} [message_id]
 * @property {number} [room]
 * @property {number} seq
 */

/**
 * A refused frame; it changed nothing. `retry_after` is in seconds.
 * @typedef {object} ErrorFrame
 * @property {"error"} type
 * @property {string} code
 * @property {string} message
 * @property {string} [ref]
 * @property {number} [retry_after]
 */

/**
 * @typedef {object} PongFrame
 * @property {"pong"} type
 * @property {string} [ref]
 */

/**
 * The end of a `sync` replay: room id -> the seq each room is now at.
 * @typedef {object} SyncedFrame
 * @property {"synced"} type
 * @property {Record<string, number>} rooms
 * @property {string} [ref]
 */

/**
 * @typedef {HelloFrame | MessageNewFrame | MessageEditedFrame | MessageDeletedFrame
 *   | ReactionFrame | ThreadUpdatedFrame | TypingFrame | ReadFrame | PresenceFrame | RoomInfoFrame
 *   | RoomRemovedFrame | RoomResyncFrame | AckFrame | ErrorFrame | PongFrame | SyncedFrame
 * } ServerFrame
 */

// --- frames the page sends -------------------------------------------------------------------

/**
 * @typedef {object} MessageSendFrame
 * @property {"message.send"} type
 * @property {number} room
 * @property {string} client_msg_id
 * @property {string} body
 * @property {number} [reply_to]
 * @property {number} [thread_root] a reply in that root's thread
 * @property {string} [ref]
 */

/**
 * room id -> the last seq held; the server replays what came after, then `synced`.
 * @typedef {object} SyncFrame
 * @property {"sync"} type
 * @property {Record<string, number>} rooms
 * @property {string} [ref]
 */

// --- the page's state --------------------------------------------------------------------------

/**
 * A message sent and not yet seen back (sending, failed, or acknowledged before its
 * message.new came).
 * @typedef {object} PendingSend
 * @property {string} id its client_msg_id
 * @property {number} room
 * @property {string} body
 * @property {number | null} reply_to
 * @property {number | null} [thread_root] a reply in that root's thread
 * @property {"sending" | "sent" | "failed"} status
 * @property {string} error
 * @property {number | null} message_id
 */

/**
 * @typedef {object} State
 * @property {User | null} me
 * @property {Map<string, Community>} communities by slug
 * @property {Map<number, HeldRoom>} rooms by id
 * @property {Map<number, import("./store.js").RoomLog>} logs by room id
 * @property {number | null} current the open room
 * @property {Map<string, PendingSend>} pending by client_msg_id
 * @property {Map<number, Map<number, {name: string, until: number}>>} typing room -> user -> who
 * @property {Set<number>} online user ids
 * @property {Member[]} [members] the open room's, for the members panel
 * @property {Message | null} replyTo
 * @property {number} typedAt when the last `typing` frame was sent (ms)
 * @property {Map<number, import("./store.js").ThreadLog>} threads opened threads by root id
 * @property {number | null} thread the root id of the open thread pane
 * @property {FollowedThread[]} followed the Threads view's list
 * @property {Set<number>} mentioned root ids of threads whose replies mentioned the reader
 */

export {};
