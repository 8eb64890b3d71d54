// Direct messages in the store and the frame handlers (docs/web-client.md, "Direct
// messages"): how a DM is named and sorted, who the picker offers, and DMs arriving, changing
// and going with the room frames like any room.

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import {
  byName,
  dmName,
  isDm,
  isGroupDm,
  pickable,
  roomLabel,
  sidebarRooms,
} from "../static/web/store.js";

import { BOB, ME, ROOM, called, dm, message, onFrame, openPage, page, room } from "./harness.js";

const CY = { id: 3, username: "Cy" };
const ANA = { id: 4, username: "ana" };

beforeEach(openPage);

describe("naming", () => {
  test("a DM is named by its other members, sorted whatever their case, never by you", () => {
    assert.equal(dmName(dm(20, [BOB]), ME), "bob");
    assert.equal(dmName(dm(21, [CY, BOB, ANA]), ME), "ana, bob, Cy");
    assert.equal(roomLabel(dm(21, [CY, BOB, ANA]), ME), "ana, bob, Cy");
  });

  test("only a DM with nobody else left is called you", () => {
    assert.equal(dmName(dm(22, []), ME), "you");
  });

  test("a channel keeps its #name; kind tells DMs and channels apart", () => {
    assert.equal(roomLabel(room(10), ME), "#room-10");
    assert.equal(isDm(room(10)), false);
    assert.equal(isDm(dm(20, [BOB])), true);
    assert.equal(isDm(undefined), false);
  });

  test("a group DM has three members or more", () => {
    assert.equal(isGroupDm(dm(20, [BOB])), false);
    assert.equal(isGroupDm(dm(21, [BOB, CY])), true);
    assert.equal(isGroupDm(room(10)), false);
  });
});

describe("the sidebar", () => {
  test("channels group by community; DMs (no community) come apart, sorted by name", () => {
    const { state } = page;
    state.rooms.set(11, room(11, { community: "attic", name: "zeta" }));
    state.rooms.set(12, room(12, { name: "alpha" }));
    state.rooms.set(30, dm(30, [CY]));
    state.rooms.set(31, dm(31, [BOB, CY]));
    state.rooms.set(32, dm(32, [ANA]));
    const { groups, dms } = sidebarRooms(state);
    assert.deepEqual([...groups.keys()], ["attic", "lounge"]);
    assert.deepEqual(
      groups.get("lounge").map((r) => r.id),
      [12, ROOM],
    );
    assert.deepEqual(
      dms.map((r) => dmName(r, ME)),
      ["ana", "bob, Cy", "Cy"],
    );
  });

  test("byName sorts channels before DMs without reading a DM's missing community", () => {
    const rooms = [dm(31, [BOB]), room(12, { name: "b" }), dm(30, [CY]), room(11, { name: "a" })];
    assert.deepEqual(
      rooms.sort(byName).map((r) => r.id),
      [11, 12, 30, 31],
    );
  });
});

describe("the picker", () => {
  const member = (user) => ({ user, role: "member", joined_at: "", muted_until: null });
  const members = [member(ME), member(CY), member(BOB), member(ANA), member(BOB)];

  test("it offers each member of one's communities once, never oneself, by username", () => {
    assert.deepEqual(
      pickable(members, ME, "").map((u) => u.username),
      ["ana", "bob", "Cy"],
    );
  });

  test("the filter matches part of a username in any case", () => {
    assert.deepEqual(
      pickable(members, ME, "  C ").map((u) => u.id),
      [CY.id],
    );
    assert.deepEqual(
      pickable(members, ME, "B").map((u) => u.id),
      [BOB.id],
    );
    assert.deepEqual(pickable(members, ME, "nobody"), []);
  });

  test("adding people leaves out who is in the DM already", () => {
    assert.deepEqual(
      pickable(members, ME, "", [BOB.id, ME.id]).map((u) => u.id),
      [ANA.id, CY.id],
    );
  });
});

describe("DM frames", () => {
  test("room.added of a DM keeps it without loading any community", () => {
    onFrame({ type: "room.added", room: 20, info: dm(20, [BOB]) });
    assert.equal(page.state.rooms.get(20).kind, "dm");
    assert.equal(called("loadCommunities").length, 0);
    assert.equal(called("renderSidebar").length, 1);
  });

  test("a DM's unseen messages count as unread like a room's", () => {
    onFrame({ type: "room.added", room: 20, info: dm(20, [BOB]) });
    const frame = (id, seq) => ({
      type: "message.new",
      room: 20,
      seq,
      message: message(id, seq, { room: 20 }),
    });
    onFrame(frame(1, 1));
    onFrame(frame(2, 2));
    onFrame(frame(2, 2)); // a replay: counted once
    assert.equal(page.state.rooms.get(20).unread, 2);
  });

  test("room.updated of the open group DM redraws its header with the new members", () => {
    onFrame({ type: "room.added", room: 21, info: dm(21, [BOB, CY]) });
    page.state.current = 21;
    page.calls = [];
    onFrame({ type: "room.updated", room: 21, info: dm(21, [BOB]) });
    assert.equal(dmName(page.state.rooms.get(21), ME), "bob");
    assert.equal(isGroupDm(page.state.rooms.get(21)), false);
    assert.equal(called("renderHeader").length, 1);
    assert.equal(called("refreshMembers").length, 1);
  });

  test("room.updated keeps the open room's own unread count; others take the server's", () => {
    onFrame({ type: "room.added", room: 21, info: dm(21, [BOB, CY], { unread: 0 }) });
    onFrame({ type: "room.added", room: 22, info: dm(22, [CY], { unread: 0 }) });
    page.state.current = 21;
    onFrame({ type: "room.updated", room: 21, info: dm(21, [BOB], { unread: 1 }) });
    onFrame({ type: "room.updated", room: 22, info: dm(22, [CY], { unread: 3 }) });
    assert.equal(page.state.rooms.get(21).unread, 0);
    assert.equal(page.state.rooms.get(22).unread, 3);
  });

  test("room.removed after leaving takes the open DM away and says so by its names", () => {
    onFrame({ type: "room.added", room: 21, info: dm(21, [BOB, CY]) });
    page.state.current = 21;
    onFrame({ type: "room.removed", room: 21, reason: "left" });
    assert.equal(page.state.rooms.has(21), false);
    assert.equal(page.state.current, null);
    assert.deepEqual(called("notify"), [
      ["notify", "The conversation with bob, Cy is gone: you left.", "error"],
    ]);
  });

  test("hello keeps the DMs it lists and drops one lost while away", () => {
    page.state.rooms.set(20, dm(20, [BOB]));
    onFrame({
      type: "hello",
      protocol: 1,
      user: ME,
      heartbeat_s: 30,
      rooms: [room(ROOM), dm(21, [CY], { unread: 3, head_seq: 3 })],
      online: [],
    });
    assert.deepEqual(
      [...page.state.rooms.keys()].sort((a, b) => a - b),
      [ROOM, 21],
    );
    assert.equal(page.state.rooms.get(21).unread, 3);
  });
});
