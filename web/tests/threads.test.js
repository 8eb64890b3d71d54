// Threads in the store (docs/threads.md; docs/web-client.md, "Threads"): replies kept out of
// the room's list and in their thread's, root summaries applied by event_seq, the Threads
// view's unread total.

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import {
  applySummary,
  concernsMe,
  repliesLabel,
  rootOf,
  takeThread,
  threadOf,
  threadUnread,
} from "../static/web/store.js";
import {
  BOB,
  ME,
  ROOM,
  added,
  bodies,
  called,
  held,
  message,
  onFrame,
  openPage,
  page,
} from "./harness.js";

beforeEach(openPage);

const reply = (id, seq, root, extra = {}) => added(id, seq, { thread_root: root, ...extra });
const summary = (count, participants = [BOB.id]) => ({
  reply_count: count,
  last_reply_at: "2026-01-01T00:05:00Z",
  participants,
});
const updated = (root, seq, thread, room = ROOM) =>
  onFrame({ type: "thread.updated", room, seq, message_id: root, thread });
const open = (root) => {
  const thread = threadOf(page.state, root, ROOM);
  page.state.thread = root;
  return thread;
};

describe("replies", () => {
  test("a reply never enters the room's list, nor its unread count, but moves its cursor", () => {
    added(1, 1);
    reply(2, 2, 1);
    assert.deepEqual(bodies(), ["message 1"]);
    assert.equal(held().byId(2), null);
    assert.equal(page.state.rooms.get(ROOM).unread, 1); // the root only
    assert.equal(held().events, 2); // sync resumes after the reply
    assert.equal(page.state.rooms.get(ROOM).head_seq, 2);
  });

  test("a reply goes to its thread's log when the thread is opened, in seq order", () => {
    added(1, 1);
    const thread = open(1);
    reply(3, 4, 1);
    reply(2, 2, 1);
    reply(2, 2, 1); // a replay: once
    assert.deepEqual(
      thread.ordered().map((m) => m.id),
      [2, 3],
    );
    assert.deepEqual(bodies(), ["message 1"]);
    assert.ok(called("renderThread").length >= 2);
  });

  test("a reply of a thread not opened is left to the thread's page", () => {
    added(1, 1);
    reply(2, 2, 1);
    assert.equal(page.state.threads.size, 0);
  });

  test("in the open pane, another's reply moves the thread marker; one's own does not", () => {
    added(1, 1);
    open(1);
    reply(2, 2, 1);
    reply(3, 3, 1, { author: ME });
    reply(2, 2, 1); // replayed: nothing more to read
    assert.deepEqual(
      called("readThread").map((c) => c.slice(1)),
      [[1, 2]],
    );
  });

  test("an edit, a reaction and a deletion of a reply apply in its thread", () => {
    added(1, 1);
    const thread = open(1);
    reply(2, 2, 1);
    onFrame({ type: "reaction.added", room: ROOM, seq: 4, message_id: 2, emoji: "👍", user: BOB });
    onFrame({
      type: "message.edited",
      room: ROOM,
      seq: 5,
      message: message(2, 2, { thread_root: 1, body: "fixed", event_seq: 5 }),
    });
    assert.equal(thread.byId(2).body, "fixed");
    assert.deepEqual(thread.byId(2).reactions, [{ emoji: "👍", count: 1, me: false }]);
    onFrame({ type: "message.deleted", room: ROOM, seq: 6, message_id: 2 });
    onFrame({ type: "message.deleted", room: ROOM, seq: 6, message_id: 2 }); // replayed
    assert.equal(thread.byId(2).deleted, true);
    assert.equal(held().later.size, 0); // nothing left waiting in the room's log
  });

  test("a reply's ack after its message.new ends the pending send", () => {
    added(1, 1);
    open(1);
    const item = { id: "c1", room: ROOM, body: "r", reply_to: null, thread_root: 1 };
    page.state.pending.set("c1", { ...item, status: "sending", error: "", message_id: null });
    reply(2, 2, 1, { author: ME });
    page.state.pending.set("c1", { ...item, status: "sending", error: "", message_id: null });
    onFrame({ type: "ack", ref: "c1", client_msg_id: "c1", message_id: 2, seq: 2 });
    assert.equal(page.state.pending.size, 0);
  });
});

describe("thread.updated", () => {
  test("a root's summary is applied only by a newer event", () => {
    added(1, 1);
    reply(2, 2, 1);
    updated(1, 3, summary(1));
    assert.equal(held().byId(1).thread.reply_count, 1);
    assert.equal(held().byId(1).event_seq, 3);
    updated(1, 3, summary(7)); // replayed
    updated(1, 2, summary(9)); // older than the message
    assert.equal(held().byId(1).thread.reply_count, 1);
    reply(4, 4, 1);
    updated(1, 5, summary(2));
    assert.equal(repliesLabel(held().byId(1)), "2 replies");
    assert.equal(held().events, 5);
  });

  test("an event before the root's page waits for it; the page's newer state wins", () => {
    updated(1, 3, summary(1));
    held().take({ results: [message(1, 1, { event_seq: 2, thread: null })], has_more: false });
    assert.equal(held().byId(1).thread.reply_count, 1);
    updated(5, 6, summary(1));
    held().take({
      results: [message(5, 4, { event_seq: 8, thread: summary(3) })],
      has_more: false,
    });
    assert.equal(held().byId(5).thread.reply_count, 3); // the page is newer than the event
  });

  test("the Threads view is refreshed only for a thread that concerns the reader", () => {
    added(1, 1); // Bob's root
    updated(1, 3, summary(1));
    assert.equal(called("refreshThreads").length, 0);
    added(2, 4, { author: ME }); // my root: followed once it has a reply
    updated(2, 6, summary(1));
    assert.equal(called("refreshThreads").length, 1);
    updated(1, 7, summary(2, [BOB.id, ME.id])); // I replied
    assert.equal(called("refreshThreads").length, 2);
    page.state.followed = [{ root: message(9, 8), unread: 0 }];
    updated(9, 10, summary(1));
    assert.equal(called("refreshThreads").length, 3);
  });

  test("a reply mentioning the reader makes its thread theirs", () => {
    added(1, 1);
    reply(2, 2, 1, { mentions: [ME.id] });
    assert.equal(concernsMe(page.state, 1, summary(1), held().byId(1)), true);
    assert.equal(concernsMe(page.state, 3, summary(1), null), false);
  });
});

describe("thread pages and totals", () => {
  test("a thread's page brings its replies and a newer root into the room's log", () => {
    added(1, 1);
    const thread = open(1);
    reply(3, 3, 1); // live, while the page is on its way
    takeThread(page.state, thread, {
      root: message(1, 1, { event_seq: 4, thread: summary(2) }),
      results: [message(2, 2, { thread_root: 1 }), message(3, 3, { thread_root: 1 })],
      has_more: false,
    });
    assert.deepEqual(
      thread.ordered().map((m) => m.id),
      [2, 3],
    );
    assert.equal(held().byId(1).thread.reply_count, 2);
    assert.equal(rootOf(page.state, thread), held().byId(1));
    assert.deepEqual(bodies(), ["message 1"]);
  });

  test("a root outside the room's log is the page's, and summaries apply to it", () => {
    const thread = open(1);
    takeThread(page.state, thread, {
      root: message(1, 1, { event_seq: 1 }),
      results: [],
      has_more: false,
    });
    updated(1, 3, summary(1));
    assert.equal(rootOf(page.state, thread).thread.reply_count, 1);
    assert.equal(applySummary(rootOf(page.state, thread), 3, summary(5)), false);
  });

  test("the unread total adds the followed threads' unread replies", () => {
    assert.equal(threadUnread(page.state), 0);
    page.state.followed = [
      { root: message(1, 1), unread: 2 },
      { root: message(2, 2), unread: 0 },
      { root: message(3, 3), unread: 3 },
    ];
    assert.equal(threadUnread(page.state), 5);
    assert.equal(repliesLabel(message(1, 1, { thread: summary(1) })), "1 reply");
    assert.equal(repliesLabel(message(1, 1, { thread: null })), "");
  });

  test("losing a room closes its thread and drops its threads from the list", () => {
    added(1, 1);
    open(1);
    page.state.followed = [{ root: message(1, 1), unread: 1 }];
    onFrame({ type: "room.removed", room: ROOM, reason: "kicked" });
    assert.equal(page.state.thread, null);
    assert.equal(page.state.threads.size, 0);
    assert.deepEqual(page.state.followed, []);
    assert.equal(threadUnread(page.state), 0);
  });
});
