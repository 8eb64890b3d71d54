// The room events (docs/protocol.md, "Room events") applied to the store: each message once
// and in seq order, each change once, whatever mix of history pages, live events and replays.

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import {
  BOB,
  ME,
  ROOM,
  added,
  bodies,
  called,
  edited,
  held,
  message,
  onFrame,
  openPage,
  page,
  reaction,
} from "./harness.js";

beforeEach(openPage);

describe("message.new", () => {
  test("messages are held in seq order whatever order they arrive in", () => {
    added(1, 3); // ids in another order than seqs: the seq decides
    added(3, 1);
    added(2, 2);
    assert.deepEqual(bodies(), ["message 3", "message 2", "message 1"]);
    assert.equal(held().last, 3);
    assert.equal(page.state.rooms.get(ROOM).head_seq, 3);
  });

  test("a replayed message.new is shown once and does not replace what came after it", () => {
    added(1, 1);
    reaction("reaction.added", 1, 2);
    added(1, 1); // the replay of a sync that started before it
    assert.deepEqual(bodies(), ["message 1"]);
    assert.deepEqual(held().byId(1).reactions, [{ emoji: "👍", count: 1, me: false }]);
  });

  test("an unseen message of someone else counts as unread once", () => {
    added(1, 1);
    added(1, 1);
    assert.equal(page.state.rooms.get(ROOM).unread, 1);
    page.seeing = true;
    added(2, 2);
    assert.equal(page.state.rooms.get(ROOM).unread, 1);
  });

  test("one's own message and one already counted by hello are not unread", () => {
    page.state.rooms.get(ROOM).counted = 5;
    added(1, 4); // replayed, below hello's head
    added(2, 6, { author: ME });
    assert.equal(page.state.rooms.get(ROOM).unread || 0, 0);
  });

  test("in the open room it is drawn and marked read; elsewhere only counted", () => {
    added(1, 1);
    assert.equal(called("renderMessages").length, 1);
    assert.equal(called("markRead").length, 1);
    page.state.current = 99;
    added(2, 2);
    assert.equal(called("renderMessages").length, 1);
    assert.equal(page.state.rooms.get(ROOM).unread, 2);
  });

  test("it ends the pending send it acknowledges, and its author's typing", () => {
    page.state.pending.set("w-a", { id: "w-a", room: ROOM, status: "sent", message_id: 1 });
    page.state.pending.set("w-b", { id: "w-b", room: ROOM, status: "sending", message_id: null });
    page.state.typing.set(ROOM, new Map([[BOB.id, { name: "bob", until: Date.now() + 5000 }]]));
    added(1, 1);
    assert.deepEqual([...page.state.pending.keys()], ["w-b"]);
    assert.equal(page.state.typing.get(ROOM).size, 0);
    assert.equal(called("renderTyping").length, 1);
  });
});

describe("message.edited", () => {
  test("a newer edit replaces the text and keeps the reactions held", () => {
    added(1, 1);
    reaction("reaction.added", 1, 2, ME);
    edited(1, 3, 1, "new text");
    const shown = held().byId(1);
    assert.equal(shown.body, "new text");
    assert.equal(shown.event_seq, 3);
    assert.deepEqual(shown.reactions, [{ emoji: "👍", count: 1, me: true }]);
    assert.equal(held().events, 3);
  });

  test("an older edit arriving late does not overwrite a newer text", () => {
    added(1, 1);
    edited(1, 5, 1, "newer");
    edited(1, 3, 1, "older");
    assert.deepEqual(bodies(), ["newer"]);
  });

  test("an edit of a message not held yet waits for its page, and yields to a newer page", () => {
    edited(1, 4, 1, "from the socket");
    edited(2, 4, 2, "from the socket");
    assert.equal(held().ordered().length, 0); // not shown before its message
    held().take(
      {
        results: [
          message(2, 2, { body: "page, newer", event_seq: 6 }),
          message(1, 1, {
            body: "page, older",
            event_seq: 3,
            reactions: [{ emoji: "🎉", count: 1, me: true }],
          }),
        ],
        has_more: false,
      },
      false,
    );
    assert.equal(held().byId(1).body, "from the socket");
    assert.deepEqual(held().byId(1).reactions, [{ emoji: "🎉", count: 1, me: true }]);
    assert.equal(held().byId(2).body, "page, newer");
    assert.equal(held().ordered().length, 2);
  });
});

describe("message.deleted", () => {
  test("it empties the message and keeps its place", () => {
    added(1, 1);
    added(2, 2);
    reaction("reaction.added", 1, 3);
    onFrame({ type: "message.deleted", room: ROOM, seq: 4, message_id: 1 });
    const gone = held().byId(1);
    assert.equal(gone.deleted, true);
    assert.equal(gone.body, "");
    assert.deepEqual(gone.reactions, []);
    assert.deepEqual(
      held()
        .ordered()
        .map((m) => m.id),
      [1, 2],
    );
  });

  test("a deletion before its message is held applies when the message comes", () => {
    onFrame({ type: "message.deleted", room: ROOM, seq: 4, message_id: 1 });
    assert.equal(held().byId(1), null);
    assert.equal(held().events, 4);
    held().take({ results: [message(1, 1)], has_more: false }, false);
    assert.equal(held().byId(1).deleted, true);
  });
});

describe("reactions", () => {
  test("a reaction counts once, even when its event comes again", () => {
    added(1, 1);
    reaction("reaction.added", 1, 2);
    reaction("reaction.added", 1, 2);
    reaction("reaction.added", 1, 3, ME);
    assert.deepEqual(held().byId(1).reactions, [{ emoji: "👍", count: 2, me: true }]);
  });

  test("a reaction the page shows already (its event_seq) is not added again", () => {
    held().take(
      {
        results: [
          message(1, 1, { event_seq: 2, reactions: [{ emoji: "👍", count: 1, me: false }] }),
        ],
        has_more: false,
      },
      false,
    );
    reaction("reaction.added", 1, 2); // replayed by sync from before the page
    assert.deepEqual(held().byId(1).reactions, [{ emoji: "👍", count: 1, me: false }]);
  });

  test("removing the last one takes the emoji away; mine is unmarked", () => {
    added(1, 1);
    reaction("reaction.added", 1, 2, ME);
    reaction("reaction.added", 1, 3, BOB, "🎉");
    reaction("reaction.removed", 1, 4, ME);
    assert.deepEqual(held().byId(1).reactions, [{ emoji: "🎉", count: 1, me: false }]);
  });

  test("a reaction before its message is held waits for it", () => {
    reaction("reaction.added", 1, 2);
    held().take({ results: [message(1, 1)], has_more: false }, false);
    assert.deepEqual(held().byId(1).reactions, [{ emoji: "👍", count: 1, me: false }]);
    assert.equal(held().byId(1).event_seq, 2);
  });
});

describe("a mix of pages, live events and replays", () => {
  test("every message once, in order, each change applied once", () => {
    added(3, 3); // live, before the page
    held().take(
      {
        results: [message(2, 2), message(1, 1, { body: "edited", event_seq: 4 })],
        has_more: false,
      },
      false,
    );
    edited(1, 4, 1, "edited"); // live, and in the page already
    reaction("reaction.added", 2, 5);
    // A reconnect's replay from seq 1: all of it again.
    added(2, 2);
    added(3, 3);
    edited(1, 4, 1, "edited");
    reaction("reaction.added", 2, 5);
    added(4, 6);
    assert.deepEqual(bodies(), ["edited", "message 2", "message 3", "message 4"]);
    assert.deepEqual(held().byId(2).reactions, [{ emoji: "👍", count: 1, me: false }]);
    assert.equal(held().events, 6);
  });
});
