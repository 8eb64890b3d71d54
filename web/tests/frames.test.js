// The other frames (docs/protocol.md): hello, the ephemeral ones, and the answers to what
// the page sent.

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import {
  BOB,
  ME,
  ROOM,
  added,
  bodies,
  called,
  held,
  onFrame,
  openPage,
  page,
  room,
} from "./harness.js";

beforeEach(openPage);

describe("hello", () => {
  test("it takes the readable rooms with their heads, and drops the rooms lost while away", () => {
    page.state.rooms.set(11, room(11));
    page.state.online.add(5);
    onFrame({
      type: "hello",
      protocol: 1,
      user: ME,
      heartbeat_s: 25,
      rooms: [room(ROOM, { head_seq: 41, unread: 3, topic: "new topic" })],
      online: [7, 9],
    });
    assert.deepEqual([...page.state.rooms.keys()], [ROOM]);
    const kept = page.state.rooms.get(ROOM);
    assert.equal(kept.head_seq, 41);
    assert.equal(kept.counted, 41);
    assert.equal(kept.unread, 3);
    assert.equal(kept.topic, "new topic");
    // hello's, and the user themself; not what was known before
    assert.deepEqual([...page.state.online], [7, 9, ME.id]);
    assert.equal(called("refreshMembers").length, 1);
    assert.ok(called("renderSidebar").length >= 1);
  });

  test("losing the open room while away closes it with a notice", () => {
    onFrame({ type: "hello", protocol: 1, user: ME, heartbeat_s: 25, rooms: [] });
    assert.equal(page.state.current, null);
    assert.equal(page.state.rooms.size, 0);
    assert.deepEqual(called("notify"), [
      ["notify", "#room-10 is gone: you can no longer read it.", "error"],
    ]);
    assert.equal(called("renderRoom").length, 1);
  });
});

describe("ephemeral frames", () => {
  test("typing shows who types until it expires; one's own is not shown", () => {
    onFrame({ type: "typing", room: ROOM, user: ME });
    assert.equal(page.state.typing.size, 0);
    const before = Date.now();
    onFrame({ type: "typing", room: ROOM, user: BOB });
    const typing = page.state.typing.get(ROOM).get(BOB.id);
    assert.equal(typing.name, "bob");
    assert.ok(typing.until >= before + 5000 && typing.until <= Date.now() + 5000);
    assert.equal(called("renderTyping").length, 1);
    const [[, run, ms]] = called("schedule");
    assert.equal(ms, 5100);
    run();
    assert.equal(called("renderTyping").length, 2);
  });

  test("read from another connection clears the unread count when it reaches the end", () => {
    added(1, 1);
    added(2, 2);
    onFrame({ type: "read", room: ROOM, seq: 1 });
    assert.equal(page.state.rooms.get(ROOM).unread, 2);
    onFrame({ type: "read", room: ROOM, seq: 2 });
    assert.equal(page.state.rooms.get(ROOM).unread, 0);
    assert.equal(page.state.rooms.get(ROOM).read_seq, 2);
  });

  test("presence keeps who is online and redraws the members", () => {
    onFrame({ type: "presence", user: BOB, status: "online" });
    assert.deepEqual([...page.state.online], [BOB.id]);
    onFrame({ type: "presence", user: BOB, status: "offline" });
    assert.equal(page.state.online.size, 0);
    assert.equal(called("renderMembers").length, 2);
  });

  test("room.added of a new community loads the communities; room.updated merges", async () => {
    onFrame({ type: "room.added", room: 12, info: room(12, { community: "elsewhere" }) });
    assert.equal(page.state.rooms.get(12).name, "room-12");
    assert.equal(called("loadCommunities").length, 1);
    await Promise.resolve();
    page.state.rooms.get(ROOM).unread = 4;
    onFrame({ type: "room.updated", room: ROOM, info: { id: ROOM, topic: "changed" } });
    assert.equal(page.state.rooms.get(ROOM).topic, "changed");
    assert.equal(page.state.rooms.get(ROOM).unread, 4);
    assert.equal(called("renderHeader").length, 1);
    onFrame({ type: "room.added", room: 13, info: room(13) }); // a known community
    assert.equal(called("loadCommunities").length, 1);
  });

  test("room.removed forgets the room, its log and its unsent messages, and says why", () => {
    added(1, 1);
    page.state.pending.set("w-a", { id: "w-a", room: ROOM, status: "failed" });
    onFrame({ type: "room.removed", room: ROOM, reason: "banned" });
    assert.equal(page.state.rooms.has(ROOM), false);
    assert.equal(page.state.logs.has(ROOM), false);
    assert.equal(page.state.pending.size, 0);
    assert.equal(page.state.current, null);
    assert.deepEqual(called("notify"), [["notify", "#room-10 is gone: you were banned.", "error"]]);
  });

  test("room.resync asks again from the last seq held, or from before the gap", () => {
    added(1, 7);
    onFrame({ type: "room.resync", room: ROOM, from_seq: 5 });
    onFrame({ type: "room.resync", room: 11, from_seq: 5 });
    assert.deepEqual(
      called("send").map((c) => c[1]),
      [
        { type: "sync", rooms: { [ROOM]: 7 }, ref: "resync" },
        { type: "sync", rooms: { 11: 4 }, ref: "resync" },
      ],
    );
  });
});

describe("answers", () => {
  test("an ack marks the send as sent, and ends it if its message.new came first", () => {
    page.state.pending.set("w-a", { id: "w-a", room: ROOM, status: "sending", message_id: null });
    page.state.pending.set("w-b", { id: "w-b", room: ROOM, status: "sending", message_id: null });
    added(2, 2);
    onFrame({ type: "ack", ref: "w-a", client_msg_id: "w-a", message_id: 1, seq: 1 });
    onFrame({ type: "ack", ref: "w-b", client_msg_id: "w-b", message_id: 2, seq: 2 });
    assert.deepEqual([...page.state.pending.keys()], ["w-a"]);
    assert.equal(page.state.pending.get("w-a").status, "sent");
    assert.equal(page.state.pending.get("w-a").message_id, 1);
    added(1, 1); // then its message.new: shown once, as the real message
    assert.equal(page.state.pending.size, 0);
    assert.deepEqual(bodies(), ["message 1", "message 2"]);
  });

  test("an error on a send marks it failed; other errors are noticed, not sync's", () => {
    page.state.pending.set("w-a", { id: "w-a", room: ROOM, status: "sending", message_id: null });
    onFrame({ type: "error", ref: "w-a", code: "rate_limited", message: "Slow down." });
    assert.equal(page.state.pending.get("w-a").status, "failed");
    assert.equal(page.state.pending.get("w-a").error, "Slow down.");
    onFrame({ type: "error", ref: "sync", code: "not_found", message: "12" });
    onFrame({ type: "error", ref: "resync", code: "not_found", message: "12" });
    assert.equal(called("notify").length, 0);
    onFrame({ type: "error", code: "bad_frame", message: "Bad frame." });
    assert.deepEqual(called("notify"), [["notify", "Bad frame.", "error"]]);
  });

  test("synced, pong and unknown frames change nothing", () => {
    added(1, 1);
    const before = JSON.stringify([...held().messages]);
    page.calls = [];
    for (const type of ["synced", "pong", "something.new"]) onFrame({ type, rooms: {} });
    assert.equal(JSON.stringify([...held().messages]), before);
    assert.deepEqual(page.calls, []);
  });
});
