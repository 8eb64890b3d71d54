// A page for the frame handlers' tests: a fresh store with one open room, and the page's
// callbacks recorded instead of drawing anything. What the page would show follows from the
// store, and the tests read it there.

import { createHandlers } from "../static/web/handlers.js";
import { createState, logOf } from "../static/web/store.js";

export const ME = { id: 1, username: "me" };
export const BOB = { id: 2, username: "bob" };
export const ROOM = 10;

export function message(id, seq, extra = {}) {
  return {
    id,
    room: ROOM,
    seq,
    event_seq: seq,
    author: BOB,
    body: `message ${id}`,
    reply_to: null,
    mentions: [],
    reactions: [],
    created_at: "2026-01-01T00:00:00Z",
    edited_at: null,
    deleted: false,
    ...extra,
  };
}

export function room(id, extra = {}) {
  return {
    id,
    kind: "channel",
    community: "lounge",
    members: null,
    name: `room-${id}`,
    topic: "",
    private: false,
    slow_mode_s: 0,
    head_seq: 0,
    unread: 0,
    created_at: "2026-01-01T00:00:00Z",
    ...extra,
  };
}

// A DM of ME and `others` (docs/web-client.md, "Direct messages"): no community, no name,
// its members by id.
export function dm(id, others, extra = {}) {
  return room(id, {
    kind: "dm",
    community: null,
    name: "",
    private: true,
    members: [ME, ...others].sort((a, b) => a.id - b.id),
    ...extra,
  });
}

// state: the store; calls: [name, ...args] of each callback; seeing: whether the page shows
// the end of the open room.
export const page = { state: null, calls: [], seeing: false, onFrame: null };

function record(name, answer) {
  return (...args) => {
    page.calls.push([name, ...args]);
    return typeof answer === "function" ? answer(...args) : answer;
  };
}

// Signed in as ME, with ROOM open; run before each test.
export function openPage() {
  const state = createState();
  state.me = ME;
  state.rooms.set(ROOM, room(ROOM));
  state.communities.set("lounge", { slug: "lounge", name: "Lounge", my_role: "member" });
  state.current = ROOM;
  Object.assign(page, { state, calls: [], seeing: false });
  page.onFrame = createHandlers(state, {
    renderSidebar: record("renderSidebar"),
    renderHeader: record("renderHeader"),
    renderRoom: record("renderRoom"),
    renderMessages: record("renderMessages"),
    renderMembers: record("renderMembers"),
    renderTyping: record("renderTyping"),
    notify: record("notify"),
    markRead: record("markRead"),
    seeing: record("seeing", () => page.seeing),
    refreshMembers: record("refreshMembers"),
    loadCommunities: record("loadCommunities", () => Promise.resolve()),
    send: record("send", true),
    schedule: record("schedule"),
    renderThread: record("renderThread"),
    refreshThreads: record("refreshThreads"),
    readThread: record("readThread"),
  }).onFrame;
}

export const onFrame = (frame) => page.onFrame(frame);
export const called = (name) => page.calls.filter((c) => c[0] === name);
export const held = (roomId = ROOM) => logOf(page.state, roomId);
export const bodies = (roomId = ROOM) =>
  held(roomId)
    .ordered()
    .map((m) => m.body);

export const added = (id, seq, extra) =>
  onFrame({ type: "message.new", room: ROOM, seq, message: message(id, seq, extra) });
export const edited = (id, seq, at, body) =>
  onFrame({
    type: "message.edited",
    room: ROOM,
    seq,
    message: message(id, at, { body, event_seq: seq, edited_at: "2026-01-01T01:00:00Z" }),
  });
export const reaction = (type, id, seq, user = BOB, emoji = "👍") =>
  onFrame({ type, room: ROOM, seq, message_id: id, emoji, user });
