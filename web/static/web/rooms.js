// Loading what the page shows over REST: the communities, a room's history (merged into its
// log with what the socket brought), its members and who is online; and the read marker.

import { api, apiAll } from "./api.js";
import { $, failure, notify, session, state } from "./page.js";
import { renderMembers, renderMessages, renderRoom, renderSidebar } from "./render.js";
import { logOf } from "./store.js";

const PAGE = 50;

export async function loadCommunities() {
  const mine = await apiAll("/api/v1/communities/?mine=1");
  state.communities = new Map(mine.map((c) => [c.slug, c]));
}

export async function openRoom(roomId) {
  state.current = roomId;
  state.replyTo = null;
  // The thread pane stays beside its own room only (docs/web-client.md, "Threads").
  const thread = state.thread === null ? null : state.threads.get(state.thread);
  if (thread && thread.room !== roomId) {
    state.thread = null;
    $("thread").hidden = true;
  }
  notify("");
  renderSidebar();
  renderRoom();
  const held = logOf(state, roomId);
  if (!held.loaded) await loadHistory(roomId, false);
  renderMessages(true);
  markRead();
  $("composer-input").focus();
  refreshMembers();
}

async function loadHistory(roomId, older) {
  const held = logOf(state, roomId);
  if (held.loading || (older && !held.hasMore)) return;
  held.loading = true;
  try {
    const query = older && held.oldest !== Infinity ? `&before_seq=${held.oldest}` : "";
    const page = await api("GET", `/api/v1/rooms/${roomId}/messages?limit=${PAGE}${query}`);
    held.take(page, older);
  } catch (error) {
    failure(error);
  } finally {
    held.loading = false;
  }
}

export async function older() {
  const roomId = state.current;
  await loadHistory(roomId, true);
  if (roomId === state.current) renderMessages();
}

export function seeing(roomId) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  return roomId === state.current && atBottom && document.visibilityState === "visible";
}

export function markRead() {
  const roomId = state.current;
  const room = state.rooms.get(roomId);
  if (!room || !seeing(roomId)) return;
  const held = logOf(state, roomId);
  if (!room.unread && (room.read_seq || 0) >= held.last) return;
  room.unread = 0;
  room.read_seq = held.last;
  renderSidebar();
  const link = session.link;
  if (!link || !link.send({ type: "read", room: roomId, seq: held.last, ref: "read" })) {
    api("POST", `/api/v1/rooms/${roomId}/read`, { seq: held.last }).catch(() => null);
  }
}

export async function loadMembers() {
  const roomId = state.current;
  if (roomId === null) return;
  try {
    // Who is online comes from hello and presence frames; the open panel asks once more,
    // since hello and presence leave out rooms of more than 500 members.
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

// The members panel follows the open room, and its members after a reconnect.
export function refreshMembers() {
  if (!$("members").hidden) loadMembers();
}
