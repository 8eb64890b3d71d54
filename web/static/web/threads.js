// Threads (docs/threads.md; docs/web-client.md, "Threads"): the thread pane beside the room
// (the root, its replies, a composer posting with `thread_root`, Follow/Unfollow), and the
// sidebar's Threads view of the followed threads with their unread replies. Replies arrive
// with the room's events (handlers.js keeps them out of the room's list).

import { api, apiAll } from "./api.js";
import { actions, newId, transmit } from "./compose.js";
import { $, failure, session, state } from "./page.js";
import { openRoom } from "./rooms.js";
import { canModerate, roomLabel, rootOf, takeThread, threadOf, threadUnread } from "./store.js";
import { el, excerpt, messageItem } from "./view.js";

const PAGE = 200; // the most a thread page holds (docs/threads.md, "Reading")
const MAX_PAGES = 10;

// The open pane: who had focus before it opened (focus returns there on close), whether the
// reader follows the thread, and the nodes drawn (updated in place, like the room's list).
const pane = {
  /** @type {HTMLElement | null} */
  opener: null,
  following: false,
  /** @type {{root: number | null, nodes: Map<string, {sig: string, node: HTMLElement}>}} */
  shown: { root: null, nodes: new Map() },
};

/**
 * Open the pane on the thread of `rootId` (a top-level message of `roomId`), opening its room
 * first when another one is open.
 * @param {number} rootId
 * @param {number} roomId
 */
export async function openThread(rootId, roomId) {
  const before = /** @type {HTMLElement | null} */ (document.activeElement);
  if (!$("thread").contains(before)) pane.opener = before;
  if (roomId !== state.current && state.rooms.has(roomId)) await openRoom(roomId);
  state.thread = rootId;
  const thread = threadOf(state, rootId, roomId);
  pane.following = state.followed.some((entry) => entry.root.id === rootId);
  $("thread").hidden = false;
  renderThread(true);
  $("thread-input").focus();
  if (!thread.loaded) await loadThread(thread);
  if (state.thread !== rootId) return;
  renderThread(true);
  await readToEnd(rootId);
}

/** @param {import("./store.js").ThreadLog} thread */
async function loadThread(thread) {
  if (thread.loading) return;
  thread.loading = true;
  try {
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const after = thread.last ? `&after_seq=${thread.last}` : "";
      const path = `/api/v1/messages/${thread.rootId}/thread?limit=${PAGE}${after}`;
      const answer = await api("GET", path);
      takeThread(state, thread, answer);
      if (!answer.has_more) break;
    }
  } catch (error) {
    failure(error);
  } finally {
    thread.loading = false;
  }
}

export function closeThread() {
  if (state.thread === null) return;
  state.thread = null;
  renderThread();
  let opener = pane.opener;
  pane.opener = null;
  // A Threads view entry may have been drawn again meanwhile: its new button takes focus.
  if (opener && !opener.isConnected && opener.dataset && opener.dataset.root) {
    opener = document.querySelector(`#thread-list button[data-root="${opener.dataset.root}"]`);
  }
  if (opener && opener.isConnected && !opener.closest("[hidden]")) opener.focus();
  else $("composer-input").focus();
}

/**
 * Move the thread marker to its last reply (docs/threads.md, "Following"): on opening the
 * pane, and when a reply of someone else comes while it is open and seen.
 * @param {number} rootId
 */
export async function readToEnd(rootId) {
  const thread = state.threads.get(rootId);
  if (!thread || !thread.last || thread.last <= (thread.readSeq || 0)) return;
  if (document.visibilityState !== "visible") return;
  thread.readSeq = thread.last;
  const entry = state.followed.find((e) => e.root.id === rootId);
  if (entry) entry.unread = 0;
  renderThreadsView();
  try {
    const answer = await api("POST", `/api/v1/messages/${rootId}/thread/read`, {
      seq: thread.last,
    });
    if (rootId === state.thread) {
      pane.following = answer.following;
      renderFollow();
    }
  } catch (error) {
    failure(error);
  }
}

// A reply of someone else came while the pane is open: the marker goes to the end.
/** @param {number} rootId */
export function readLive(rootId) {
  readToEnd(rootId);
}

async function toggleFollow() {
  const rootId = state.thread;
  if (rootId === null) return;
  try {
    if (pane.following) {
      await api("DELETE", `/api/v1/messages/${rootId}/follow`);
      pane.following = false;
    } else {
      const answer = await api("PUT", `/api/v1/messages/${rootId}/follow`);
      pane.following = answer.following;
    }
  } catch (error) {
    failure(error);
  }
  if (rootId === state.thread) renderFollow();
  refreshThreads();
}

function renderFollow() {
  $("thread-follow").textContent = pane.following ? "Unfollow" : "Follow";
  $("thread-follow").setAttribute(
    "aria-label",
    pane.following ? "Unfollow this thread" : "Follow this thread",
  );
}

function send(event) {
  event.preventDefault();
  const input = /** @type {HTMLTextAreaElement} */ ($("thread-input"));
  const body = input.value.trim();
  const thread = state.thread === null ? null : state.threads.get(state.thread);
  if (!body || !thread) return;
  /** @type {import("./types.js").PendingSend} */
  const item = {
    id: newId(),
    room: thread.room,
    body,
    reply_to: null,
    thread_root: thread.rootId,
    status: "sending",
    error: "",
    message_id: null,
  };
  state.pending.set(item.id, item);
  input.value = "";
  renderThread(true);
  transmit(item);
}

// The acts on a message in the pane: those of the room, but a failed reply is retried or
// dropped here, and a reply is not quoted inline into the room's composer.
const paneActions = {
  ...actions,
  retry(item) {
    transmit(item);
    renderThread();
  },
  discard(item) {
    state.pending.delete(item.id);
    renderThread();
  },
};

/** The pane as the store has it: hidden when no thread is open. */
export function renderThread(toBottom = false) {
  const section = $("thread");
  const list = $("thread-messages");
  const thread = state.thread === null ? null : state.threads.get(state.thread);
  if (!thread) {
    section.hidden = true;
    list.replaceChildren();
    pane.shown = { root: null, nodes: new Map() };
    return;
  }
  section.hidden = false;
  const room = state.rooms.get(thread.room);
  $("thread-where").textContent = room ? `in ${roomLabel(room, state.me)}` : "";
  renderFollow();
  if (pane.shown.root !== thread.rootId) {
    pane.shown = { root: thread.rootId, nodes: new Map() };
    list.replaceChildren();
  }
  const stick = toBottom || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const options = {
    me: state.me,
    canModerate: canModerate(state, thread.room),
    actions: paneActions,
    parent: null,
    inThread: true,
  };
  const wanted = [];
  const root = rootOf(state, thread);
  if (root) {
    wanted.push({
      key: `r${root.id}`,
      sig: JSON.stringify([root.event_seq, root.body, root.deleted, root.reactions, "root"]),
      make: () => {
        const node = messageItem(root, options);
        node.classList.add("thread-root");
        return node;
      },
    });
  } else {
    wanted.push({
      key: "loading",
      sig: "",
      make: () => el("li", { class: "muted older", text: "Loading the thread…" }),
    });
  }
  for (const reply of thread.ordered()) {
    wanted.push({
      key: `m${reply.id}`,
      sig: JSON.stringify([reply.event_seq, reply.body, reply.deleted, reply.reactions]),
      make: () => messageItem(reply, options),
    });
  }
  for (const item of state.pending.values()) {
    if (item.thread_root !== thread.rootId) continue;
    if (item.message_id && thread.byId(item.message_id)) continue;
    const message = {
      id: null,
      seq: null,
      author: state.me,
      body: item.body,
      reply_to: null,
      reactions: [],
    };
    wanted.push({
      key: `p${item.id}`,
      sig: JSON.stringify([item.status, item.error]),
      make: () => messageItem(message, { ...options, pending: item }),
    });
  }
  const nodes = new Map();
  wanted.forEach((entry, index) => {
    const known = pane.shown.nodes.get(entry.key);
    const node = known && known.sig === entry.sig ? known.node : entry.make();
    nodes.set(entry.key, { sig: entry.sig, node });
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  pane.shown.nodes = nodes;
  if (stick) list.scrollTop = list.scrollHeight;
}

// The Threads view: GET /api/v1/me/threads again (its first pages), when a change concerns
// it; calls that come while one is on its way make one more after it, not one each.
let refreshing = null;
let again = false;

export function refreshThreads() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      again = false;
      try {
        const followed = await apiAll("/api/v1/me/threads", 2);
        // The open pane's thread is read as its replies come.
        for (const entry of followed) if (entry.root.id === state.thread) entry.unread = 0;
        state.followed = followed;
      } catch (error) {
        if (session.link) failure(error);
      }
    } while (again);
    refreshing = null;
    if (state.thread !== null) {
      const open = state.followed.some((e) => e.root.id === state.thread);
      if (open) pane.following = true;
      renderFollow();
    }
    renderThreadsView();
  })();
  return refreshing;
}

export function renderThreadsView() {
  const total = threadUnread(state);
  const badge = $("threads-badge");
  badge.hidden = total === 0;
  badge.textContent = String(total);
  $("threads-badge-label").textContent = total ? `, ${total} unread` : "";
  $("threads-empty").hidden = state.followed.length > 0;
  $("thread-list").replaceChildren(
    ...state.followed.map(({ root, unread }) => {
      const room = state.rooms.get(root.room);
      const where = room ? roomLabel(room, state.me) : "";
      const text = root.deleted ? "(deleted)" : excerpt(root.body, 40);
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: `room thread-entry${root.id === state.thread ? " current" : ""}`,
            "aria-current": root.id === state.thread ? "true" : null,
            "aria-label": `Thread of ${root.author.username} in ${where}: ${text}${
              unread ? `, ${unread} unread` : ""
            }`,
            dataset: { root: String(root.id) },
            onclick: () => openThread(root.id, root.room),
          },
          el(
            "span",
            { class: "name" },
            el("span", { class: "who", text: `${root.author.username}: ` }),
            text,
            el("span", { class: "where", text: where }),
          ),
          unread > 0 ? el("span", { class: "unread", text: String(unread) }) : null,
        ),
      );
    }),
  );
}

// The pane's controls, once: its composer (Enter sends, Shift+Enter a new line), Follow and
// Close; Escape is handled by the page (app.js).
export function bindThread() {
  $("thread-composer").addEventListener("submit", send);
  $("thread-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  $("thread-follow").addEventListener("click", toggleFollow);
  $("thread-close").addEventListener("click", closeThread);
}
