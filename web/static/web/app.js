// Sphere's web client: the rooms you read, live over the socket, with the REST API for the
// rest. Each room's log is kept by seq: history pages, live events and `sync` replays merge
// into one ordered list, each event once. A message is sent with a client_msg_id: shown at once,
// replaced by the real one on its ack, and sent again with the same id after a reconnect
// (the server answers a repeat with the original, never a second message).

import { api, apiAll, ApiError } from "./api.js";
import { Link } from "./link.js";
import { el, excerpt, messageItem, panel, roomEntry } from "./view.js";

const $ = (id) => document.getElementById(id);
const MODERATING = new Set(["owner", "admin", "moderator"]);
const PAGE = 50;

class RoomLog {
  constructor() {
    this.messages = new Map(); // seq -> message
    this.ids = new Map(); // message id -> seq
    this.last = 0; // the highest message seq held
    this.events = 0; // the highest event seq held (the cursor of `sync`)
    this.oldest = Infinity;
    this.loaded = false;
    this.hasMore = true;
    this.loading = false;
    this.later = new Map(); // message id -> events about a message not held yet
  }

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
  wait(messageId, apply) {
    if (this.later.size >= 500 && !this.later.has(messageId)) return;
    if (!this.later.has(messageId)) this.later.set(messageId, []);
    this.later.get(messageId).push(apply);
  }

  byId(id) {
    const seq = this.ids.get(id);
    return seq === undefined ? null : this.messages.get(seq);
  }

  ordered() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}

const state = {
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
let link = null;

function log(roomId) {
  if (!state.logs.has(roomId)) state.logs.set(roomId, new RoomLog());
  return state.logs.get(roomId);
}

function canModerate(roomId) {
  const room = state.rooms.get(roomId);
  const community = room && state.communities.get(room.community);
  return Boolean(community && MODERATING.has(community.my_role));
}

function notify(text, kind = "info") {
  const notice = $("notice");
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = !text;
}

function failure(error) {
  if (error instanceof ApiError) {
    const wait = error.retryAfter ? ` Try again in ${Math.ceil(error.retryAfter)} s.` : "";
    notify(`${error.message}${wait}`, "error");
  } else {
    notify(String(error), "error");
  }
}

// --- signing in -----------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const mode = event.submitter ? event.submitter.value : "login";
  const body = { username: form.username.value.trim(), password: form.password.value };
  const error = $("signin-error");
  error.textContent = "";
  try {
    if (mode === "register") await api("POST", "/api/v1/auth/register", body);
    await api("POST", "/api/v1/auth/login", body);
    form.password.value = "";
    await start();
  } catch (failed) {
    const fields = failed.fields ? Object.values(failed.fields).flat().join(" ") : "";
    error.textContent = fields || failed.message;
  }
}

async function signOut() {
  if (link) link.stop();
  await api("POST", "/api/v1/auth/logout").catch(() => null);
  location.reload();
}

function showSignIn() {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-username").focus();
}

// --- start ---------------------------------------------------------------------------------

function reset() {
  // A new sign-in starts from nothing: no rooms, logs or unsent messages of another account.
  if (link) link.stop();
  link = null;
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

async function start() {
  reset();
  state.me = await api("GET", "/api/v1/me");
  $("signin").hidden = true;
  $("app").hidden = false;
  $("me").textContent = `@${state.me.username}`;
  await loadCommunities();
  for (const room of await apiAll("/api/v1/me/rooms")) state.rooms.set(room.id, room);
  await acceptInviteFromLink();
  renderSidebar();
  link = new Link({ cursors, onFrame: onFrame, onState: onLinkState });
  link.connect();
  const first = [...state.rooms.values()].sort(byName)[0];
  if (first) openRoom(first.id);
}

async function loadCommunities() {
  const mine = await apiAll("/api/v1/communities/?mine=1");
  state.communities = new Map(mine.map((c) => [c.slug, c]));
}

async function acceptInviteFromLink() {
  const match = location.hash.match(/^#\/invite\/([\w-]+)$/);
  if (!match) return;
  history.replaceState(null, "", location.pathname);
  try {
    await api("POST", `/api/v1/invites/${encodeURIComponent(match[1])}/accept`);
    await loadCommunities();
    for (const room of await apiAll("/api/v1/me/rooms")) state.rooms.set(room.id, room);
    notify("You joined through the invite link.");
  } catch (error) {
    failure(error);
  }
}

function byName(a, b) {
  return a.community.localeCompare(b.community) || a.name.localeCompare(b.name);
}

// --- the socket ----------------------------------------------------------------------------

function cursors() {
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

function onLinkState(linkState, detail) {
  const labels = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    "signed-out": "Signed out",
    stopped: detail || "Disconnected",
  };
  const shown = $("link-state");
  shown.textContent = labels[linkState] || linkState;
  shown.dataset.state = linkState;
  if (linkState === "live") {
    for (const item of state.pending.values()) if (item.status === "sending") transmit(item);
    markRead();
  } else if (linkState === "signed-out") {
    showSignIn();
  }
}

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
    case "typing":
      return onTyping(frame);
    case "read":
      return onRead(frame.room, frame.seq);
    case "presence":
      if (frame.status === "online") state.online.add(frame.user.id);
      else state.online.delete(frame.user.id);
      return renderMembers();
    case "room.added":
    case "room.updated":
      return onRoomInfo(frame.info, frame.type === "room.added");
    case "room.removed":
      return onRoomRemoved(frame.room, frame.reason);
    case "room.resync":
      link.send({
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

function onHello(frame) {
  // Who is online is told again from here (presence frames, and the members panel).
  state.online = new Set();
  if (!$("members").hidden) loadMembers();
  const readable = new Set(frame.rooms.map((r) => r.id));
  for (const roomId of [...state.rooms.keys()]) {
    if (!readable.has(roomId)) onRoomRemoved(roomId, "removed"); // lost while away
  }
  for (const room of frame.rooms) {
    const known = state.rooms.get(room.id);
    // ``unread`` counts up to ``head_seq`` here: a replayed message below it is not new.
    state.rooms.set(room.id, { ...(known || {}), ...room, counted: room.head_seq });
  }
  renderSidebar();
}

// Every event about a message carries its seq, and a message says the seq of the last event
// that changed it (``event_seq``): an event is applied only to an older version, so history
// pages, live events and replays can arrive in any mix without applying one twice.
function onMessage(roomId, message, seq, isNew) {
  const held = log(roomId);
  held.events = Math.max(held.events, seq);
  const existing = held.byId(message.id);
  if (isNew ? !existing : existing && seq > (existing.event_seq || 0)) {
    // An edit's frame has no ``me`` in its reactions: the ones held here stay.
    held.put(existing && !isNew ? { ...message, reactions: existing.reactions } : message);
  } else if (!isNew && !existing) {
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
    if (isNew && !existing && !counted && message.author.id !== state.me.id && !seeing(roomId)) {
      room.unread = (room.unread || 0) + 1;
      renderSidebar();
    }
  }
  if (isNew) clearTyping(roomId, message.author.id);
  if (roomId === state.current) {
    renderMessages();
    markRead();
  }
}

function newer(message, seq) {
  if (!message || seq <= (message.event_seq || 0)) return false;
  message.event_seq = seq;
  return true;
}

function onDeleted(frame) {
  const held = log(frame.room);
  held.events = Math.max(held.events, frame.seq);
  const message = held.byId(frame.message_id);
  if (!message) {
    held.wait(frame.message_id, () => onDeleted(frame));
    return;
  }
  if (!newer(message, frame.seq)) return;
  Object.assign(message, { deleted: true, body: "", reactions: [], mentions: [] });
  if (frame.room === state.current) renderMessages();
}

function onReaction(frame) {
  const held = log(frame.room);
  held.events = Math.max(held.events, frame.seq);
  const message = held.byId(frame.message_id);
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
  if (frame.room === state.current) renderMessages();
}

function onTyping(frame) {
  if (frame.user.id === state.me.id) return;
  if (!state.typing.has(frame.room)) state.typing.set(frame.room, new Map());
  state.typing.get(frame.room).set(frame.user.id, { name: frame.user.username, until: Date.now() + 5000 });
  renderTyping();
  setTimeout(renderTyping, 5100);
}

function clearTyping(roomId, userId) {
  const typing = state.typing.get(roomId);
  if (typing && typing.delete(userId)) renderTyping();
}

function onRead(roomId, seq) {
  // Another of my connections read up to ``seq`` (a message seq).
  const room = state.rooms.get(roomId);
  if (room && seq >= log(roomId).last) {
    room.unread = 0;
    room.read_seq = Math.max(room.read_seq || 0, seq);
    renderSidebar();
  }
}

function onRoomInfo(info, added) {
  const known = state.rooms.get(info.id);
  state.rooms.set(info.id, known ? { ...known, ...info } : info);
  if (added && !state.communities.has(info.community)) loadCommunities().then(renderSidebar);
  renderSidebar();
  if (info.id === state.current) renderHeader();
}

function onRoomRemoved(roomId, reason) {
  const room = state.rooms.get(roomId);
  state.rooms.delete(roomId);
  state.logs.delete(roomId);
  for (const [id, item] of state.pending) if (item.room === roomId) state.pending.delete(id);
  renderSidebar();
  if (roomId === state.current) {
    state.current = null;
    const why = { kicked: "you were removed", banned: "you were banned", left: "you left", deleted: "it was deleted" }[reason] || "you can no longer read it";
    notify(`#${room ? room.name : "this room"} is gone: ${why}.`, "error");
    renderRoom();
  }
}

function onAck(frame) {
  const item = frame.ref && state.pending.get(frame.ref);
  if (!item) return;
  item.status = "sent";
  item.message_id = frame.message_id;
  const held = log(item.room);
  if (held.byId(frame.message_id)) state.pending.delete(item.id); // its message.new came first
  if (item.room === state.current) renderMessages();
}

function onError(frame) {
  const item = frame.ref && state.pending.get(frame.ref);
  if (item) {
    item.status = "failed";
    item.error = frame.message;
    if (item.room === state.current) renderMessages();
    return;
  }
  if (frame.ref !== "sync" && frame.ref !== "resync") notify(frame.message, "error");
}

// --- a room ---------------------------------------------------------------------------------

async function openRoom(roomId) {
  state.current = roomId;
  state.replyTo = null;
  notify("");
  renderSidebar();
  renderRoom();
  const held = log(roomId);
  if (!held.loaded) await loadHistory(roomId, false);
  renderMessages(true);
  markRead();
  $("composer-input").focus();
  if (!$("members").hidden) loadMembers();
}

async function loadHistory(roomId, older) {
  const held = log(roomId);
  if (held.loading || (older && !held.hasMore)) return;
  held.loading = true;
  try {
    const query = older && held.oldest !== Infinity ? `&before_seq=${held.oldest}` : "";
    const page = await api("GET", `/api/v1/rooms/${roomId}/messages?limit=${PAGE}${query}`);
    for (const message of page.results) {
      const existing = held.messages.get(message.seq);
      if (!existing || message.event_seq > (existing.event_seq || 0)) held.put(message);
    }
    if (older || !held.loaded) held.hasMore = page.has_more;
    held.loaded = true;
  } catch (error) {
    failure(error);
  } finally {
    held.loading = false;
  }
}

function seeing(roomId) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  return roomId === state.current && atBottom && document.visibilityState === "visible";
}

function markRead() {
  const roomId = state.current;
  const room = state.rooms.get(roomId);
  if (!room || !seeing(roomId)) return;
  const held = log(roomId);
  if (!room.unread && (room.read_seq || 0) >= held.last) return;
  room.unread = 0;
  room.read_seq = held.last;
  renderSidebar();
  if (!link || !link.send({ type: "read", room: roomId, seq: held.last, ref: "read" })) {
    api("POST", `/api/v1/rooms/${roomId}/read`, { seq: held.last }).catch(() => null);
  }
}

// --- sending --------------------------------------------------------------------------------

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `w-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function send(event) {
  event.preventDefault();
  const input = $("composer-input");
  const body = input.value.trim();
  if (!body || state.current === null) return;
  const item = {
    id: newId(),
    room: state.current,
    body,
    reply_to: state.replyTo ? state.replyTo.id : null,
    status: "sending",
    error: "",
    message_id: null,
  };
  state.pending.set(item.id, item);
  input.value = "";
  setReply(null);
  renderMessages(true);
  transmit(item);
}

function transmit(item) {
  if (!link) return;
  const frame = { type: "message.send", room: item.room, client_msg_id: item.id, body: item.body, ref: item.id };
  if (item.reply_to) frame.reply_to = item.reply_to;
  item.status = "sending";
  link.send(frame); // not open: sent again, with the same id, once the link is live
}

const actions = {
  reply(message) {
    setReply(message);
    $("composer-input").focus();
  },
  async react(message, emoji, add) {
    const path = `/api/v1/messages/${message.id}/reactions/${encodeURIComponent(emoji)}/`;
    await api(add ? "PUT" : "DELETE", path).catch(failure);
  },
  async edit(message) {
    const body = prompt("Edit your message", message.body);
    if (body === null || body.trim() === message.body) return;
    await api("PATCH", `/api/v1/messages/${message.id}/`, { body }).catch(failure);
  },
  async remove(message) {
    if (!confirm("Delete this message?")) return;
    await api("DELETE", `/api/v1/messages/${message.id}/`).catch(failure);
  },
  async report(message) {
    const reason = prompt("Why should the moderators look at this message?");
    if (reason === null) return;
    try {
      await api("POST", `/api/v1/messages/${message.id}/report`, { reason });
      notify("Reported. Thank you.");
    } catch (error) {
      failure(error);
    }
  },
  async mute(message) {
    const minutes = Number(prompt(`Mute ${message.author.username} for how many minutes?`, "60"));
    if (!minutes) return;
    const room = state.rooms.get(message.room);
    const path = `/api/v1/communities/${room.community}/members/${message.author.id}/mute`;
    try {
      await api("POST", path, { minutes });
      notify(`${message.author.username} is muted for ${minutes} minutes.`);
    } catch (error) {
      failure(error);
    }
  },
  async ban(message) {
    const reason = prompt(`Ban ${message.author.username} from the community? Reason:`, "");
    if (reason === null) return;
    const room = state.rooms.get(message.room);
    try {
      await api("POST", `/api/v1/communities/${room.community}/bans/`, { user_id: message.author.id, reason });
      notify(`${message.author.username} is banned.`);
    } catch (error) {
      failure(error);
    }
  },
  retry(item) {
    transmit(item);
    renderMessages();
  },
  discard(item) {
    state.pending.delete(item.id);
    renderMessages();
  },
};

function setReply(message) {
  state.replyTo = message;
  $("replying").hidden = !message;
  $("replying-text").textContent = message
    ? `Replying to ${message.author.username}: ${excerpt(message.body, 60)}`
    : "";
}

function typed() {
  const now = Date.now();
  if (state.current === null || now - state.typedAt < 3000 || !link) return;
  state.typedAt = now;
  link.send({ type: "typing", room: state.current });
}

// --- rendering ------------------------------------------------------------------------------

function renderSidebar() {
  const list = $("room-list");
  const groups = new Map();
  for (const room of [...state.rooms.values()].sort(byName)) {
    if (!groups.has(room.community)) groups.set(room.community, []);
    groups.get(room.community).push(room);
  }
  list.replaceChildren(
    ...[...groups].map(([slug, rooms]) => {
      const community = state.communities.get(slug);
      return el(
        "li",
        { class: "community" },
        el("h2", { text: community ? community.name : slug }),
        el("ul", {}, rooms.map((room) => roomEntry(room, { current: state.current, onOpen: openRoom }))),
      );
    }),
  );
}

function renderRoom() {
  renderHeader();
  const open = state.current !== null && state.rooms.has(state.current);
  $("composer").hidden = !open;
  $("room-tools").hidden = !open;
  if (!open) {
    $("messages").replaceChildren();
    $("typing").textContent = "";
  }
}

function renderHeader() {
  const room = state.rooms.get(state.current);
  $("room-title").textContent = room ? `#${room.name}${room.private ? " (private)" : ""}` : "Pick a room";
  $("room-topic").textContent = room ? room.topic : "";
  const moderating = room ? canModerate(room.id) : false;
  const community = room && state.communities.get(room.community);
  $("reports-button").hidden = !moderating;
  $("invite-button").hidden = !(community && ["owner", "admin"].includes(community.my_role));
}

// The message list is updated in place: a message whose version did not change keeps its
// node (and with it keyboard focus, an open reaction menu, and screen readers' quiet).
let shown = { room: null, nodes: new Map() }; // key -> {sig, node}

function renderMessages(toBottom = false) {
  const roomId = state.current;
  const list = $("messages");
  if (roomId === null) return;
  if (shown.room !== roomId) {
    shown = { room: roomId, nodes: new Map() };
    list.replaceChildren();
  }
  const held = log(roomId);
  const stick = toBottom || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const anchor = list.scrollHeight - list.scrollTop;
  const moderating = canModerate(roomId);
  const options = { me: state.me, canModerate: moderating, actions };
  const wanted = [];
  if (held.hasMore && held.loaded) {
    wanted.push({
      key: "older",
      sig: "",
      make: () => el("li", { class: "older" }, el("button", { type: "button", class: "link", text: "Load older messages", onclick: older })),
    });
  }
  for (const message of held.ordered()) {
    const parent = message.reply_to ? held.byId(message.reply_to) : null;
    wanted.push({
      key: `m${message.id}`,
      sig: JSON.stringify([message.event_seq, message.body, message.deleted, message.edited_at,
        message.reactions, parent && [parent.event_seq, parent.deleted], moderating]),
      make: () => messageItem(message, { ...options, parent }),
    });
  }
  for (const item of state.pending.values()) {
    if (item.room !== roomId || (item.message_id && held.byId(item.message_id))) continue;
    const message = { id: null, seq: null, author: state.me, body: item.body, reply_to: item.reply_to, reactions: [] };
    wanted.push({
      key: `p${item.id}`,
      sig: JSON.stringify([item.status, item.error]),
      make: () => messageItem(message, { ...options, parent: null, pending: item }),
    });
  }
  const nodes = new Map();
  wanted.forEach((entry, index) => {
    const known = shown.nodes.get(entry.key);
    const node = known && known.sig === entry.sig ? known.node : entry.make();
    nodes.set(entry.key, { sig: entry.sig, node });
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  shown.nodes = nodes;
  list.scrollTop = stick ? list.scrollHeight : list.scrollHeight - anchor;
}

async function older() {
  const roomId = state.current;
  await loadHistory(roomId, true);
  if (roomId === state.current) renderMessages();
}

function renderTyping() {
  const typing = state.typing.get(state.current);
  const now = Date.now();
  const names = typing ? [...typing.values()].filter((t) => t.until > now).map((t) => t.name) : [];
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
}

// --- side panels ----------------------------------------------------------------------------

function showPanel(...content) {
  const section = $("panel");
  section.replaceChildren(...content);
  section.hidden = false;
  const focusable = section.querySelector("input, button");
  if (focusable) focusable.focus();
}

function closePanel() {
  $("panel").hidden = true;
  $("panel").replaceChildren();
}

async function browse(query = "") {
  let found = [];
  try {
    found = await apiAll(`/api/v1/communities/?q=${encodeURIComponent(query)}`, 2);
  } catch (error) {
    failure(error);
  }
  const search = el("input", { type: "search", id: "browse-q", value: query, "aria-label": "Search communities" });
  const form = el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); browse(search.value); } }, search, el("button", { type: "submit", text: "Search" }));
  const rows = found.map((c) =>
    el(
      "li",
      {},
      el("strong", { text: c.name }),
      ` · ${c.member_count} members · ${c.visibility} `,
      c.my_role
        ? el("span", { class: "muted", text: `(you: ${c.my_role})` })
        : el("button", { type: "button", text: c.visibility === "public" ? "Join" : "Ask to join", onclick: () => join(c) }),
      el("p", { class: "muted", text: c.description }),
    ),
  );
  showPanel(...panel("Communities", closePanel, form, el("ul", { class: "plain" }, rows)));
}

async function join(community) {
  try {
    await api("POST", `/api/v1/communities/${community.slug}/join`);
    await loadCommunities();
    notify(community.visibility === "public" ? `You joined ${community.name}.` : "Your request was sent to the admins.");
    browse($("browse-q") ? $("browse-q").value : "");
  } catch (error) {
    failure(error);
  }
}

function createForm() {
  const name = el("input", { id: "new-name", required: true, maxlength: "100" });
  const about = el("input", { id: "new-about", maxlength: "2000" });
  const visibility = el("select", { id: "new-visibility" }, el("option", { value: "public", text: "Public" }), el("option", { value: "private", text: "Private" }));
  const form = el(
    "form",
    {
      class: "stack",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const made = await api("POST", "/api/v1/communities/", { name: name.value, description: about.value, visibility: visibility.value });
          await loadCommunities();
          closePanel();
          notify(`${made.name} is ready: its #general room is yours.`);
        } catch (error) {
          failure(error);
        }
      },
    },
    el("label", { for: "new-name", text: "Name" }), name,
    el("label", { for: "new-about", text: "Description" }), about,
    el("label", { for: "new-visibility", text: "Visibility" }), visibility,
    el("button", { type: "submit", text: "Create" }),
  );
  showPanel(...panel("New community", closePanel, form));
}

async function searchMessages(event) {
  event.preventDefault();
  const q = $("search-input").value.trim();
  if (!q) return;
  try {
    const found = await apiAll(`/api/v1/search?q=${encodeURIComponent(q)}`, 1);
    const rows = found.map((m) => {
      const room = state.rooms.get(m.room);
      return el(
        "li",
        {},
        el("button", { type: "button", class: "link", text: `#${room ? room.name : m.room}`, onclick: () => { closePanel(); openRoom(m.room); } }),
        ` ${m.author.username}: `,
        el("span", { text: excerpt(m.body, 120) }),
      );
    });
    showPanel(...panel(`Search: ${q}`, closePanel, rows.length ? el("ul", { class: "plain" }, rows) : el("p", { text: "Nothing found." })));
  } catch (error) {
    failure(error);
  }
}

async function reports() {
  const room = state.rooms.get(state.current);
  if (!room) return;
  try {
    const open = await apiAll(`/api/v1/communities/${room.community}/reports/?status=open`, 2);
    const resolve = async (report, action) => {
      const body = { action };
      if (action === "mute_author") body.minutes = 60;
      try {
        await api("POST", `/api/v1/reports/${report.id}/resolve`, body);
        reports();
      } catch (error) {
        failure(error);
      }
    };
    const rows = open.map((r) =>
      el(
        "li",
        {},
        el("p", { text: `${r.message.author.username}: ${r.message.deleted ? "(deleted)" : excerpt(r.message.body, 120)}` }),
        el("p", { class: "muted", text: `reported by ${r.reporter ? r.reporter.username : "automod"}: ${r.reason}` }),
        el("div", { class: "row" },
          ["dismiss", "delete_message", "mute_author", "ban_author"].map((action) =>
            el("button", { type: "button", class: action === "dismiss" ? "secondary" : "", text: action.replace("_", " "), onclick: () => resolve(r, action) }),
          ),
        ),
      ),
    );
    showPanel(...panel("Open reports", closePanel, rows.length ? el("ul", { class: "plain" }, rows) : el("p", { text: "No open reports." })));
  } catch (error) {
    failure(error);
  }
}

async function inviteLink() {
  const room = state.rooms.get(state.current);
  if (!room) return;
  try {
    const invite = await api("POST", `/api/v1/communities/${room.community}/invites/`, {});
    const url = `${location.origin}/#/invite/${invite.code}`;
    showPanel(...panel("Invite link", closePanel, el("p", { text: "Anyone with this link can join:" }), el("input", { readonly: true, value: url, "aria-label": "Invite link" })));
  } catch (error) {
    failure(error);
  }
}

async function loadMembers() {
  const roomId = state.current;
  if (roomId === null) return;
  try {
    const [members, presence] = await Promise.all([
      apiAll(`/api/v1/rooms/${roomId}/members`, 3),
      api("GET", `/api/v1/rooms/${roomId}/presence`),
    ]);
    presence.online.forEach((id) => state.online.add(id));
    state.members = members;
    renderMembers();
  } catch (error) {
    failure(error);
  }
}

function renderMembers() {
  if ($("members").hidden || !state.members) return;
  $("member-list").replaceChildren(
    ...state.members.map((m) =>
      el(
        "li",
        {},
        el("span", { class: state.online.has(m.user.id) ? "dot online" : "dot", "aria-hidden": "true" }),
        el("span", { text: m.user.username }),
        el("span", { class: "muted", text: ` ${m.role}${state.online.has(m.user.id) ? ", online" : ""}` }),
      ),
    ),
  );
}

function toggleMembers() {
  const aside = $("members");
  aside.hidden = !aside.hidden;
  $("members-button").setAttribute("aria-expanded", String(!aside.hidden));
  if (!aside.hidden) loadMembers();
}

// --- wiring ---------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("composer").addEventListener("submit", send);
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
    else typed();
  });
  $("reply-cancel").addEventListener("click", () => setReply(null));
  $("browse-button").addEventListener("click", () => browse());
  $("create-button").addEventListener("click", createForm);
  $("search-form").addEventListener("submit", searchMessages);
  $("reports-button").addEventListener("click", reports);
  $("invite-button").addEventListener("click", inviteLink);
  $("members-button").addEventListener("click", toggleMembers);
  $("messages").addEventListener("scroll", () => {
    const list = $("messages");
    if (list.scrollTop < 40 && state.current !== null && log(state.current).hasMore) older();
    markRead();
  });
  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("hashchange", async () => {
    if (!state.me) return; // signing in handles it
    await acceptInviteFromLink();
    renderSidebar();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closePanel();
  });
  // For the browser tests and the curious: the client's state, read-only by convention.
  window.sphere = { state, link: () => link };
}

wire();
start().catch((error) => {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) showSignIn();
  else failure(error);
});
