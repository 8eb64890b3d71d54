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
 * @param {import("./types.js").Room} a
 * @param {import("./types.js").Room} b
 */
export function byName(a, b) {
  return a.community.localeCompare(b.community) || a.name.localeCompare(b.name);
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
