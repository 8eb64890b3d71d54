// The server's frames (docs/protocol.md) applied to the store. What a change means on screen
// (drawing, the read marker, a notice) is left to the callbacks the page passes in: nothing
// here touches the DOM, so the tests run these handlers under Node against a plain store.

import { applySummary, concernsMe, findMessage, isDm, logOf, roomLabel } from "./store.js";

/** @typedef {import("./types.js").State} State */
/** @typedef {import("./types.js").ServerFrame} ServerFrame */
/** @typedef {import("./types.js").HelloFrame} HelloFrame */
/** @typedef {import("./types.js").Message} Message */
/** @typedef {import("./types.js").MessageDeletedFrame} MessageDeletedFrame */
/** @typedef {import("./types.js").ReactionFrame} ReactionFrame */
/** @typedef {import("./types.js").ThreadUpdatedFrame} ThreadUpdatedFrame */
/** @typedef {import("./types.js").TypingFrame} TypingFrame */
/** @typedef {import("./types.js").Room} Room */
/** @typedef {import("./types.js").RemovedReason} RemovedReason */
/** @typedef {import("./types.js").AckFrame} AckFrame */
/** @typedef {import("./types.js").ErrorFrame} ErrorFrame */

/**
 * What the handlers ask of the ui.
 * @typedef {object} PageHooks
 * @property {() => void} renderSidebar the room list (names, unread counts)
 * @property {() => void} renderHeader the open room's title, topic and tools
 * @property {() => void} renderRoom the open room as a whole (none open: an empty view)
 * @property {() => void} renderMessages the open room's messages
 * @property {() => void} renderMembers the members panel
 * @property {() => void} renderTyping who is typing in the open room
 * @property {(text: string, kind?: string) => void} notify
 * @property {() => void} markRead the open room is read if its end is seen
 * @property {(roomId: number) => boolean} seeing whether the end of that room is on screen
 * @property {() => void} refreshMembers reload the members panel if it is shown
 * @property {() => Promise<unknown>} loadCommunities
 * @property {(frame: object) => boolean} send a frame on the socket
 * @property {(run: () => void, ms: number) => unknown} [schedule] setTimeout unless given
 * @property {() => void} [renderThread] the open thread pane
 * @property {() => void} [refreshThreads] reload the Threads view's list
 * @property {(rootId: number, seq: number) => void} [readThread] a reply came in the open pane
 */

/**
 * @param {State} state
 * @param {PageHooks} ui
 */
export function createHandlers(state, ui) {
  const log = (roomId) => logOf(state, roomId);
  const schedule = ui.schedule || ((run, ms) => setTimeout(run, ms));
  const renderThread = ui.renderThread || (() => {});
  const refreshThreads = ui.refreshThreads || (() => {});
  const readThread = ui.readThread || (() => {});

  /** @param {ServerFrame} frame */
  function onFrame(frame) {
    switch (frame.type) {
      case "hello":
        return onHello(frame);
      case "message.new":
        return onMessage(frame.room, frame.message, frame.seq, true);
      case "message.edited":
        return onMessage(frame.room, frame.message, frame.seq, false);
      case "message.deleted":
        return onDeleted(frame);
      case "reaction.added":
      case "reaction.removed":
        return onReaction(frame);
      case "thread.updated":
        return onThreadUpdated(frame);
      case "typing":
        return onTyping(frame);
      case "read":
        return onRead(frame.room, frame.seq);
      case "presence":
        if (frame.status === "online") state.online.add(frame.user.id);
        else state.online.delete(frame.user.id);
        return ui.renderMembers();
      case "room.added":
      case "room.updated":
        return onRoomInfo(frame.info, frame.type === "room.added");
      case "room.removed":
        return onRoomRemoved(frame.room, frame.reason);
      case "room.resync":
        ui.send({
          type: "sync",
          rooms: { [String(frame.room)]: Math.max(log(frame.room).events, frame.from_seq - 1) },
          ref: "resync",
        });
        return null;
      case "ack":
        return onAck(frame);
      case "error":
        return onError(frame);
      default:
        return null;
    }
  }

  /** @param {HelloFrame} frame */
  function onHello(frame) {
    // Who is online starts again from here: hello's ``online`` (the connected users sharing a
    // room of at most 500 members, the user excepted), then presence frames keep it current.
    state.online = new Set([...(frame.online || []), frame.user.id]);
    ui.refreshMembers();
    const readable = new Set(frame.rooms.map((r) => r.id));
    for (const roomId of [...state.rooms.keys()]) {
      if (!readable.has(roomId)) onRoomRemoved(roomId, "removed"); // lost while away
    }
    for (const room of frame.rooms) {
      const known = state.rooms.get(room.id);
      // ``unread`` counts up to ``head_seq`` here: a replayed message below it is not new.
      state.rooms.set(room.id, { ...(known || {}), ...room, counted: room.head_seq });
    }
    ui.renderSidebar();
  }

  // Every event about a message carries its seq, and a message says the seq of the last event
  // that changed it (``event_seq``): an event is applied only to an older version, so history
  // pages, live events and replays can arrive in any mix without applying one twice.
  /**
   * message.new (isNew) and message.edited.
   * @param {number} roomId
   * @param {Message} message
   * @param {number} seq
   * @param {boolean} isNew
   */
  function onMessage(roomId, message, seq, isNew) {
    const held = log(roomId);
    held.events = Math.max(held.events, seq);
    // A reply belongs to its thread, never to the room's list (docs/threads.md, "Reading").
    if (message.thread_root) return onReply(roomId, message, seq, isNew);
    const existing = held.byId(message.id);
    if (isNew ? !existing : existing && seq > (existing.event_seq || 0)) {
      // An edit's frame has no ``me`` in its reactions: the ones held here stay.
      held.put(existing && !isNew ? { ...message, reactions: existing.reactions } : message);
    } else if (!isNew && !existing) {
      const thread = state.threads.get(message.id); // a root the open pane holds
      if (thread && thread.root && seq > (thread.root.event_seq || 0)) {
        thread.root = { ...message, reactions: thread.root.reactions };
        if (message.id === state.thread) renderThread();
      }
      held.wait(message.id, (page) => {
        if (seq > (page.event_seq || 0)) held.put({ ...message, reactions: page.reactions });
      });
    }
    for (const [id, item] of state.pending) {
      if (item.message_id === message.id) state.pending.delete(id);
    }
    const room = state.rooms.get(roomId);
    if (room) {
      room.head_seq = Math.max(room.head_seq || 0, seq);
      const counted = seq <= (room.counted || 0); // in hello's unread already
      const mine = message.author.id === state.me.id;
      if (isNew && !existing && !counted && !mine && !ui.seeing(roomId)) {
        room.unread = (room.unread || 0) + 1;
        ui.renderSidebar();
      }
    }
    if (isNew) clearTyping(roomId, message.author.id);
    if (roomId === state.current) {
      ui.renderMessages();
      ui.markRead();
    }
  }

  /**
   * A reply's message.new or message.edited: kept in its thread's log when the page has
   * opened that thread (one opened later loads it with the rest); never counted as unread in
   * the room, which counts top-level messages only.
   * @param {number} roomId
   * @param {Message} message
   * @param {number} seq
   * @param {boolean} isNew
   */
  function onReply(roomId, message, seq, isNew) {
    const rootId = message.thread_root;
    const thread = state.threads.get(rootId);
    let added = false;
    if (thread) {
      thread.events = Math.max(thread.events, seq);
      const existing = thread.byId(message.id);
      if (isNew ? !existing : existing && seq > (existing.event_seq || 0)) {
        thread.put(existing && !isNew ? { ...message, reactions: existing.reactions } : message);
        added = isNew;
      }
    }
    for (const [id, item] of state.pending) {
      if (item.message_id === message.id) state.pending.delete(id);
    }
    const room = state.rooms.get(roomId);
    if (room) room.head_seq = Math.max(room.head_seq || 0, seq);
    if (isNew) {
      clearTyping(roomId, message.author.id);
      if (state.me && (message.mentions || []).includes(state.me.id)) state.mentioned.add(rootId);
    }
    if (rootId === state.thread) {
      renderThread();
      if (added && state.me && message.author.id !== state.me.id) readThread(rootId, seq);
    }
  }

  /** @param {ThreadUpdatedFrame} frame */
  function onThreadUpdated(frame) {
    const held = log(frame.room);
    held.events = Math.max(held.events, frame.seq);
    const root = held.byId(frame.message_id);
    if (root) applySummary(root, frame.seq, frame.thread);
    else held.wait(frame.message_id, (page) => applySummary(page, frame.seq, frame.thread));
    const thread = state.threads.get(frame.message_id);
    if (thread && thread.root && thread.root !== root) {
      applySummary(thread.root, frame.seq, frame.thread); // the pane's root, not in the room's log
    }
    if (frame.room === state.current) ui.renderMessages();
    if (frame.message_id === state.thread) renderThread();
    if (concernsMe(state, frame.message_id, frame.thread, root || (thread && thread.root))) {
      refreshThreads();
    }
  }

  /**
   * @param {Message | null} message
   * @param {number} seq
   */
  function newer(message, seq) {
    if (!message || seq <= (message.event_seq || 0)) return false;
    message.event_seq = seq;
    return true;
  }

  /** @param {MessageDeletedFrame} frame */
  function onDeleted(frame) {
    const held = log(frame.room);
    held.events = Math.max(held.events, frame.seq);
    const found = findMessage(state, frame.room, frame.message_id);
    const message = found && found.message;
    if (!message) {
      held.wait(frame.message_id, () => onDeleted(frame));
      return;
    }
    if (!newer(message, frame.seq)) return;
    Object.assign(message, { deleted: true, body: "", reactions: [], mentions: [] });
    if (frame.room === state.current) ui.renderMessages();
    if (state.thread !== null) renderThread();
  }

  /** @param {ReactionFrame} frame */
  function onReaction(frame) {
    const held = log(frame.room);
    held.events = Math.max(held.events, frame.seq);
    const found = findMessage(state, frame.room, frame.message_id);
    const message = found && found.message;
    if (!message) {
      held.wait(frame.message_id, () => onReaction(frame));
      return;
    }
    if (!newer(message, frame.seq)) return;
    const adding = frame.type === "reaction.added";
    const mine = frame.user.id === state.me.id;
    const reactions = message.reactions || [];
    let entry = reactions.find((r) => r.emoji === frame.emoji);
    if (!entry && adding) {
      entry = { emoji: frame.emoji, count: 0, me: false };
      reactions.push(entry);
    }
    if (entry) {
      entry.count += adding ? 1 : -1;
      if (mine) entry.me = adding;
    }
    message.reactions = reactions.filter((r) => r.count > 0);
    if (frame.room === state.current) ui.renderMessages();
    if (state.thread !== null) renderThread();
  }

  /** @param {TypingFrame} frame */
  function onTyping(frame) {
    if (frame.user.id === state.me.id) return;
    if (!state.typing.has(frame.room)) state.typing.set(frame.room, new Map());
    const until = Date.now() + 5000;
    state.typing.get(frame.room).set(frame.user.id, { name: frame.user.username, until });
    ui.renderTyping();
    schedule(ui.renderTyping, 5100); // it is shown until then
  }

  /**
   * @param {number} roomId
   * @param {number} userId
   */
  function clearTyping(roomId, userId) {
    const typing = state.typing.get(roomId);
    if (typing && typing.delete(userId)) ui.renderTyping();
  }

  /**
   * @param {number} roomId
   * @param {number} seq
   */
  function onRead(roomId, seq) {
    // Another of my connections read up to ``seq`` (a message seq).
    const room = state.rooms.get(roomId);
    if (room && seq >= log(roomId).last) {
      room.unread = 0;
      room.read_seq = Math.max(room.read_seq || 0, seq);
      ui.renderSidebar();
    }
  }

  /**
   * room.added (added) and room.updated.
   * @param {Room} info
   * @param {boolean} added
   */
  function onRoomInfo(info, added) {
    const known = state.rooms.get(info.id);
    const merged = known ? { ...known, ...info } : info;
    // The room on screen keeps its own count: the server's may predate the read marker this
    // page is moving as it shows the messages.
    if (known && info.id === state.current) merged.unread = known.unread;
    state.rooms.set(info.id, merged);
    // A DM has no community (docs/web-client.md, "Direct messages"): nothing to load.
    if (added && info.community !== null && !state.communities.has(info.community)) {
      ui.loadCommunities().then(ui.renderSidebar);
    }
    ui.renderSidebar();
    if (info.id === state.current) {
      ui.renderHeader();
      if (info.members) ui.refreshMembers(); // a group DM's members changed
    }
  }

  /**
   * @param {number} roomId
   * @param {RemovedReason} reason
   */
  function onRoomRemoved(roomId, reason) {
    const room = state.rooms.get(roomId);
    state.rooms.delete(roomId);
    state.logs.delete(roomId);
    for (const [id, item] of state.pending) if (item.room === roomId) state.pending.delete(id);
    // Its threads go with it: the pane closes, and the Threads view loses them.
    for (const [rootId, thread] of state.threads) {
      if (thread.room !== roomId) continue;
      state.threads.delete(rootId);
      if (state.thread === rootId) {
        state.thread = null;
        renderThread();
      }
    }
    if (state.followed.some((entry) => entry.root.room === roomId)) {
      state.followed = state.followed.filter((entry) => entry.root.room !== roomId);
      refreshThreads();
    }
    ui.renderSidebar();
    if (roomId === state.current) {
      state.current = null;
      const why =
        {
          kicked: "you were removed",
          banned: "you were banned",
          left: "you left",
          deleted: "it was deleted",
        }[reason] || "you can no longer read it";
      const what = !room
        ? "This room"
        : isDm(room)
          ? `The conversation with ${roomLabel(room, state.me)}`
          : roomLabel(room, state.me);
      ui.notify(`${what} is gone: ${why}.`, "error");
      ui.renderRoom();
    }
  }

  /** @param {AckFrame} frame */
  function onAck(frame) {
    const item = frame.ref && state.pending.get(frame.ref);
    if (!item) return;
    item.status = "sent";
    item.message_id = frame.message_id;
    if (findMessage(state, item.room, frame.message_id)) state.pending.delete(item.id); // its message.new came first
    if (item.room === state.current) ui.renderMessages();
    if (item.thread_root && item.thread_root === state.thread) renderThread();
  }

  /** @param {ErrorFrame} frame */
  function onError(frame) {
    const item = frame.ref && state.pending.get(frame.ref);
    if (item) {
      item.status = "failed";
      item.error = frame.message;
      if (item.room === state.current) ui.renderMessages();
      if (item.thread_root && item.thread_root === state.thread) renderThread();
      return;
    }
    if (frame.ref !== "sync" && frame.ref !== "resync") ui.notify(frame.message, "error");
  }

  return { onFrame, onRoomRemoved };
}
