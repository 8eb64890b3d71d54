// The room log and the store's helpers, without a browser.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  RoomLog,
  byName,
  canModerate,
  clearState,
  createState,
  cursors,
  logOf,
} from "../static/web/store.js";

import { message } from "./harness.js";

const seqs = (held) => held.ordered().map((m) => m.seq);

describe("RoomLog", () => {
  test("ordered() gives the messages by seq, whatever order they were put in", () => {
    const held = new RoomLog();
    const seqOfId = { 1: 5, 2: 1, 3: 9, 4: 3 }; // arrival order; ids unlike seqs
    for (const [id, seq] of Object.entries(seqOfId)) held.put(message(Number(id), seq));
    assert.deepEqual(seqs(held), [1, 3, 5, 9]);
    assert.deepEqual(
      held.ordered().map((m) => m.id),
      [2, 4, 1, 3],
    );
    assert.equal(held.last, 9);
    assert.equal(held.events, 9);
    assert.equal(held.oldest, 1);
  });

  test("a message put twice is held once, as its latest version", () => {
    const held = new RoomLog();
    held.put(message(7, 2));
    held.put(message(7, 2, { body: "edited", event_seq: 4 }));
    assert.equal(held.ordered().length, 1);
    assert.equal(held.byId(7).body, "edited");
  });

  test("byId finds a held message and answers null for one not held", () => {
    const held = new RoomLog();
    held.put(message(7, 2));
    assert.equal(held.byId(7).seq, 2);
    assert.equal(held.byId(8), null);
  });

  test("ordered() is a new list: sorting it does not reorder the log", () => {
    const held = new RoomLog();
    held.put(message(1, 1));
    held.put(message(2, 2));
    held.ordered().reverse();
    assert.deepEqual(seqs(held), [1, 2]);
  });

  test("events about a message not held yet are applied once it comes, then forgotten", () => {
    const held = new RoomLog();
    const applied = [];
    held.wait(7, (m) => applied.push(["first", m.id]));
    held.wait(7, (m) => applied.push(["second", m.id]));
    assert.deepEqual(applied, []);
    held.put(message(7, 3));
    assert.deepEqual(applied, [
      ["first", 7],
      ["second", 7],
    ]);
    held.put(message(7, 3));
    assert.equal(applied.length, 2);
    assert.equal(held.later.size, 0);
  });

  test("the events kept for messages not held are bounded by message", () => {
    const held = new RoomLog();
    for (let id = 1; id <= 500; id += 1) held.wait(id, () => {});
    held.wait(501, () => {});
    assert.equal(held.later.has(501), false);
    held.wait(500, () => {}); // one already waited for still takes more
    assert.equal(held.later.get(500).length, 2);
  });

  test("a history page fills the log; hasMore is the first page's, then the older ones'", () => {
    const held = new RoomLog();
    held.take({ results: [message(3, 3), message(2, 2)], has_more: true }, false);
    assert.equal(held.loaded, true);
    assert.equal(held.hasMore, true);
    assert.deepEqual(seqs(held), [2, 3]);
    held.take({ results: [message(4, 4)], has_more: false }, false); // not older: kept
    assert.equal(held.hasMore, true);
    held.take({ results: [message(1, 1)], has_more: false }, true);
    assert.equal(held.hasMore, false);
    assert.deepEqual(seqs(held), [1, 2, 3, 4]);
    assert.equal(held.oldest, 1);
  });

  test("a page does not overwrite a newer version held, and does replace an older one", () => {
    const held = new RoomLog();
    held.put(message(1, 1, { body: "live edit", event_seq: 6 }));
    held.put(message(2, 2, { body: "old", event_seq: 2 }));
    held.take(
      {
        results: [
          message(1, 1, { body: "page", event_seq: 4 }),
          message(2, 2, { body: "page edit", event_seq: 5 }),
        ],
        has_more: false,
      },
      false,
    );
    assert.equal(held.byId(1).body, "live edit");
    assert.equal(held.byId(2).body, "page edit");
  });
});

describe("state", () => {
  test("logOf makes a room's log once and gives the same one after", () => {
    const state = createState();
    const held = logOf(state, 4);
    assert.ok(held instanceof RoomLog);
    assert.equal(logOf(state, 4), held);
    assert.equal(state.logs.size, 1);
  });

  test("clearState drops another account's rooms, logs and unsent messages in place", () => {
    const state = createState();
    state.rooms.set(1, { id: 1 });
    logOf(state, 1).put(message(1, 1));
    state.pending.set("w-1", { id: "w-1", room: 1 });
    state.current = 1;
    const same = state;
    clearState(state);
    assert.equal(state, same);
    assert.equal(state.rooms.size, 0);
    assert.equal(state.logs.size, 0);
    assert.equal(state.pending.size, 0);
    assert.equal(state.current, null);
    assert.deepEqual(state.members, []);
  });

  test("cursors name the rooms whose log is kept, with the last event seq held", () => {
    const state = createState();
    for (const id of [1, 2, 3, 4]) state.rooms.set(id, { id });
    logOf(state, 1).put(message(1, 7)); // events held
    logOf(state, 1).events = 9;
    logOf(state, 2).loaded = true; // loaded, and empty
    logOf(state, 3); // never loaded: starts live
    logOf(state, 5).put(message(2, 3)); // a room no longer readable
    assert.deepEqual(cursors(state), { 1: 9, 2: 0 });
  });

  test("canModerate follows the role in the room's community", () => {
    const state = createState();
    state.rooms.set(1, { id: 1, community: "a" });
    state.rooms.set(2, { id: 2, community: "b" });
    state.communities.set("a", { slug: "a", my_role: "moderator" });
    state.communities.set("b", { slug: "b", my_role: "member" });
    assert.equal(canModerate(state, 1), true);
    assert.equal(canModerate(state, 2), false);
    assert.equal(canModerate(state, 3), false);
  });

  test("byName sorts rooms by community, then by name", () => {
    const rooms = [
      { community: "b", name: "general" },
      { community: "a", name: "zoo" },
      { community: "a", name: "art" },
    ];
    assert.deepEqual(
      rooms.sort(byName).map((r) => `${r.community}/${r.name}`),
      ["a/art", "a/zoo", "b/general"],
    );
  });
});
