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
