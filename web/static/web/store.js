// What the page holds: each room's log kept by seq, and the rest of its state. Nothing here
// touches the page, so the rules of the log (order by seq, each event once) are tested under
// Node (web/tests/).

/** @typedef {import("./types.js").Message} Message */
/** @typedef {import("./types.js").MessagesPage} MessagesPage */
/** @typedef {import("./types.js").State} State */

export const MODERATING = new Set(["owner", "admin", "moderator"]);

export class RoomLog {
  constructor() {
    /** @type {Map<number, Message>} */
    this.messages = new Map(); // seq -> message
    /** @type {Map<number, number>} */
    this.ids = new Map(); // message id -> seq
    this.last = 0; // the highest message seq held
    this.events = 0; // the highest event seq held (the cursor of `sync`)
    this.oldest = Infinity;
    this.loaded = false;
    this.hasMore = true;
    this.loading = false;
    /** @type {Map<number, Array<(message: Message) => void>>} */
    this.later = new Map(); // message id -> events about a message not held yet
  }

  /** @param {Message} message */
  put(message) {
    this.messages.set(message.seq, message);
    this.ids.set(message.id, message.seq);
    this.last = Math.max(this.last, message.seq);
    this.events = Math.max(this.events, message.seq);
    this.oldest = Math.min(this.oldest, message.seq);
    // Events that came while the page holding this message was on its way: applied now if
    // newer than the page's version of it.
    const waiting = this.later.get(message.id);
    if (waiting) {
      this.later.delete(message.id);
      for (const apply of waiting) apply(message);
    }
  }

  // Keep an event about a message not held yet (bounded: a page loaded later shows its state).
  /**
   * @param {number} messageId
   * @param {(message: Message) => void} apply
   */
  wait(messageId, apply) {
    if (this.later.size >= 500 && !this.later.has(messageId)) return;
    if (!this.later.has(messageId)) this.later.set(messageId, []);
    this.later.get(messageId).push(apply);
  }

  // A page of history: a message held already is replaced only by a newer version of it
  // (live events may have changed it after the page was read).
  /**
   * @param {MessagesPage} page
   * @param {boolean} older whether the page is the one before the oldest message held
   */
  take(page, older) {
    for (const message of page.results) {
      const existing = this.messages.get(message.seq);
      if (!existing || message.event_seq > (existing.event_seq || 0)) this.put(message);
    }
    if (older || !this.loaded) this.hasMore = page.has_more;
    this.loaded = true;
  }

  /** @param {number} id */
  byId(id) {
    const seq = this.ids.get(id);
    return seq === undefined ? null : this.messages.get(seq);
  }

  /** @returns {Message[]} */
  ordered() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}

// Threads (docs/threads.md): a reply is a message of the room with `thread_root`; the room's
// log holds top-level messages only, and each opened thread keeps its replies in a log of its
// own, by seq like a room's, with the root beside them.
export class ThreadLog extends RoomLog {
  /**
   * @param {number} rootId
   * @param {number} roomId
   */
  constructor(rootId, roomId) {
    super();
    this.rootId = rootId;
    this.room = roomId;
    /** @type {Message | null} */
    this.root = null;
  }
}

/** @returns {State} */
export function createState() {
  return {
    me: null,
    communities: new Map(), // slug -> Community
    rooms: new Map(), // room id -> Room
    logs: new Map(), // room id -> RoomLog
    current: null,
    pending: new Map(), // client_msg_id -> {id, room, body, reply_to, status, error, message_id}
    typing: new Map(), // room id -> Map(user id -> {name, until})
    online: new Set(),
    replyTo: null,
    typedAt: 0,
    threads: new Map(), // root id -> ThreadLog (the threads the page has opened)
    thread: null, // the root id of the open thread pane
    followed: [], // GET /api/v1/me/threads: [{root, unread}], the latest reply first
    mentioned: new Set(), // root ids of threads whose replies mentioned the reader
  };
}

// A new sign-in starts from nothing: no rooms, logs or unsent messages of another account.
/** @param {State} state */
export function clearState(state) {
  Object.assign(state, {
    communities: new Map(),
    rooms: new Map(),
    logs: new Map(),
    current: null,
    pending: new Map(),
    typing: new Map(),
    online: new Set(),
    members: [],
    replyTo: null,
    threads: new Map(),
    thread: null,
    followed: [],
    mentioned: new Set(),
  });
}

/**
 * A room's log, made on first use.
 * @param {State} state
 * @param {number} roomId
 * @returns {RoomLog}
 */
export function logOf(state, roomId) {
  if (!state.logs.has(roomId)) state.logs.set(roomId, new RoomLog());
  return state.logs.get(roomId);
}

/**
 * An opened thread's log, made on first use (its room said once, by whoever opens it).
 * @param {State} state
 * @param {number} rootId
 * @param {number} roomId
 * @returns {ThreadLog}
 */
export function threadOf(state, rootId, roomId) {
  if (!state.threads.has(rootId)) state.threads.set(rootId, new ThreadLog(rootId, roomId));
  return state.threads.get(rootId);
}

/**
 * Where a message of a room is held: the room's log (a top-level message) or the log of an
 * opened thread of that room (a reply); null when neither holds it.
 * @param {State} state
 * @param {number} roomId
 * @param {number} messageId
 * @returns {{log: RoomLog, message: Message} | null}
 */
export function findMessage(state, roomId, messageId) {
  const room = state.logs.get(roomId);
  const top = room && room.byId(messageId);
  if (top) return { log: room, message: top };
  for (const thread of state.threads.values()) {
    if (thread.room !== roomId) continue;
    const reply = thread.byId(messageId);
    if (reply) return { log: thread, message: reply };
    if (thread.rootId === messageId && thread.root) return { log: thread, message: thread.root };
  }
  return null;
}

/**
 * An opened thread's root as it now stands: the room's log's version when it holds it (kept
 * current by the room's events), else the one the thread's page brought.
 * @param {State} state
 * @param {ThreadLog} thread
 * @returns {Message | null}
 */
export function rootOf(state, thread) {
  const room = state.logs.get(thread.room);
  return (room && room.byId(thread.rootId)) || thread.root;
}

/**
 * A page of a thread: its replies merged into the thread's log like a room's history page,
 * and its root kept (the room's log takes it too when it holds an older version).
 * @param {State} state
 * @param {ThreadLog} thread
 * @param {import("./types.js").ThreadPage} page
 */
export function takeThread(state, thread, page) {
  const root = page.root;
  if (!thread.root || root.event_seq > (thread.root.event_seq || 0)) thread.root = root;
  const room = state.logs.get(thread.room);
  const held = room && room.byId(root.id);
  if (held && root.event_seq > (held.event_seq || 0)) room.put({ ...root });
  thread.take(page, false);
  thread.hasMore = page.has_more;
}

/**
 * A root's new thread summary (`thread.updated`), applied only when the event is newer than
 * the message (docs/protocol.md, "Objects"); the message's `event_seq` becomes its seq.
 * @param {Message | null | undefined} message
 * @param {number} seq
 * @param {import("./types.js").ThreadSummary} summary
 * @returns {boolean} whether it was applied
 */
export function applySummary(message, seq, summary) {
  if (!message || seq <= (message.event_seq || 0)) return false;
  message.event_seq = seq;
  message.thread = summary;
  return true;
}

/**
 * "N replies" of a root (nothing without replies).
 * @param {Message} message
 */
export function repliesLabel(message) {
  const count = message.thread ? message.thread.reply_count : 0;
  if (!count) return "";
  return count === 1 ? "1 reply" : `${count} replies`;
}

/**
 * The unread replies of the followed threads, all together (the Threads badge).
 * @param {State} state
 */
export function threadUnread(state) {
  return state.followed.reduce((sum, entry) => sum + (entry.unread || 0), 0);
}

/**
 * Whether a thread's change concerns the reader's Threads view: a thread it lists, one whose
 * root the reader wrote or in which the reader replied or was mentioned (each of which follows
 * it; docs/threads.md, "Following").
 * @param {State} state
 * @param {number} rootId
 * @param {import("./types.js").ThreadSummary | null} summary
 * @param {Message | null} root the root, when held
 */
export function concernsMe(state, rootId, summary, root) {
  if (!state.me) return false;
  if (state.followed.some((entry) => entry.root.id === rootId)) return true;
  if (state.mentioned.has(rootId)) return true;
  if (root && root.author.id === state.me.id) return true;
  return Boolean(summary && (summary.participants || []).includes(state.me.id));
}

/**
 * @param {State} state
 * @param {number} roomId
 */
export function canModerate(state, roomId) {
  const room = state.rooms.get(roomId);
  const community = room && state.communities.get(room.community);
  return Boolean(community && MODERATING.has(community.my_role));
}

/**
 * Channels by community and name; DMs (no community) after them, by id.
 * @param {import("./types.js").Room} a
 * @param {import("./types.js").Room} b
 */
export function byName(a, b) {
  if (isDm(a) || isDm(b)) return Number(isDm(a)) - Number(isDm(b)) || a.id - b.id;
  return a.community.localeCompare(b.community) || a.name.localeCompare(b.name);
}

// Direct messages (docs/web-client.md, "Direct messages"): a DM is a room of `kind: "dm"`,
// with no community and its `members` (the reader included); a channel's `members` is null.

/** @param {import("./types.js").Room | undefined | null} room */
export function isDm(room) {
  return Boolean(room) && room.kind === "dm";
}

/**
 * A group DM (three members or more) can be left and grown; a two-person DM neither.
 * @param {import("./types.js").Room | undefined | null} room
 */
export function isGroupDm(room) {
  return isDm(room) && (room.members || []).length >= 3;
}

/**
 * The usernames of a DM's other members, sorted; the reader's own never, unless alone.
 * @param {import("./types.js").Room} room
 * @param {import("./types.js").User | null} me
 * @returns {string[]}
 */
export function otherNames(room, me) {
  const others = (room.members || []).filter((u) => !me || u.id !== me.id);
  return others.map((u) => u.username).sort((a, b) => a.localeCompare(b));
}

/**
 * What a DM is called: its other members' usernames, comma-separated ("you" once alone).
 * @param {import("./types.js").Room} room
 * @param {import("./types.js").User | null} me
 */
export function dmName(room, me) {
  const names = otherNames(room, me);
  return names.length ? names.join(", ") : "you";
}

/**
 * A room as text: `#name` for a channel, the other members for a DM.
 * @param {import("./types.js").Room} room
 * @param {import("./types.js").User | null} me
 */
export function roomLabel(room, me) {
  return isDm(room) ? dmName(room, me) : `#${room.name}`;
}

/**
 * The sidebar's two parts: channels grouped by community (slug -> rooms, by name), and the
 * DMs sorted by their names.
 * @param {State} state
 */
export function sidebarRooms(state) {
  /** @type {Map<string, import("./types.js").Room[]>} */
  const groups = new Map();
  const dms = [];
  for (const room of [...state.rooms.values()].sort(byName)) {
    if (isDm(room)) {
      dms.push(room);
      continue;
    }
    if (!groups.has(room.community)) groups.set(room.community, []);
    groups.get(room.community).push(room);
  }
  const named = dms.map((room) => ({ room, name: dmName(room, state.me) }));
  named.sort((a, b) => a.name.localeCompare(b.name) || a.room.id - b.room.id);
  return { groups, dms: named.map((n) => n.room) };
}

/**
 * Who the picker offers: the members of the reader's communities, each once, never the
 * reader nor anyone in `exclude`; those whose username holds `query` (any case), by username.
 * @param {import("./types.js").Member[]} members
 * @param {import("./types.js").User | null} me
 * @param {string} query
 * @param {Iterable<number>} [exclude] user ids
 * @returns {import("./types.js").User[]}
 */
export function pickable(members, me, query, exclude = []) {
  const skip = new Set(exclude);
  if (me) skip.add(me.id);
  const wanted = query.trim().toLowerCase();
  const users = new Map();
  for (const { user } of members) {
    if (skip.has(user.id) || users.has(user.id)) continue;
    if (wanted && !user.username.toLowerCase().includes(wanted)) continue;
    users.set(user.id, user);
  }
  return [...users.values()].sort((a, b) => a.username.localeCompare(b.username));
}

/**
 * What `sync` names after each (re)connect: room id -> the last seq held.
 * @param {State} state
 * @returns {Record<string, number>}
 */
export function cursors(state) {
  // Every room whose log is kept, from what it holds (0 included: a room that was empty).
  // Replays of what is held already change nothing (``event_seq``, and message.new once).
  const rooms = {};
  for (const [roomId, held] of state.logs) {
    if ((held.loaded || held.events > 0) && state.rooms.has(roomId)) {
      rooms[String(roomId)] = held.events;
    }
  }
  return rooms;
}
