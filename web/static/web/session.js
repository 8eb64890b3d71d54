// Signing in and out, and the start of a signed-in page: the account's communities and rooms
// over REST, then the socket, whose frames go to the handlers.

import { api, apiAll } from "./api.js";
import { transmit } from "./compose.js";
import { createHandlers } from "./handlers.js";
import { Link } from "./link.js";
import { $, failure, notify, session, state } from "./page.js";
import {
  renderHeader,
  renderMembers,
  renderMessages,
  renderRoom,
  renderSidebar,
  renderTyping,
} from "./render.js";
import { loadCommunities, markRead, openRoom, refreshMembers, seeing } from "./rooms.js";
import { byName, clearState, cursors } from "./store.js";
import { readLive, refreshThreads, renderThread, renderThreadsView } from "./threads.js";

const handlers = createHandlers(state, {
  renderSidebar,
  renderHeader,
  renderRoom,
  renderMessages: () => renderMessages(),
  renderMembers,
  renderTyping,
  notify,
  markRead,
  seeing,
  refreshMembers,
  loadCommunities,
  send: (frame) => session.link.send(frame),
  schedule: (run, ms) => setTimeout(run, ms),
  renderThread: () => renderThread(),
  refreshThreads,
  readThread: readLive,
});

export async function signIn(event) {
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

export async function signOut() {
  if (session.link) session.link.stop();
  await api("POST", "/api/v1/auth/logout").catch(() => null);
  location.reload();
}

export function showSignIn() {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-username").focus();
}

function reset() {
  // A new sign-in starts from nothing: no rooms, logs or unsent messages of another account.
  if (session.link) session.link.stop();
  session.link = null;
  clearState(state);
  renderThread(); // no thread open
  renderThreadsView();
}

export async function start() {
  reset();
  state.me = await api("GET", "/api/v1/me");
  $("signin").hidden = true;
  $("app").hidden = false;
  $("me").textContent = `@${state.me.username}`;
  await loadCommunities();
  for (const room of await apiAll("/api/v1/me/rooms")) state.rooms.set(room.id, room);
  await acceptInviteFromLink();
  renderSidebar();
  refreshThreads();
  session.link = new Link({
    cursors: () => cursors(state),
    onFrame: handlers.onFrame,
    onState: onLinkState,
  });
  session.link.connect();
  const first = [...state.rooms.values()].sort(byName)[0];
  if (first) openRoom(first.id);
}

export async function acceptInviteFromLink() {
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
