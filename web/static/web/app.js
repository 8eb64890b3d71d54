// Sphere's web client: the rooms you read, live over the socket, with the REST API for the
// rest. Each room's log is kept by seq: history pages, live events and `sync` replays merge
// into one ordered list, each event once (store.js, handlers.js). A message is sent with a
// client_msg_id, so sending it again can never make a second one (compose.js).
//
// This module only wires the page's controls to the modules that act, then starts.

import { ApiError } from "./api.js";
import { actions, send, setReply, typed } from "./compose.js";
import { addPeople, bindPicker, leave, messageUser, newMessage } from "./dms.js";
import { $, failure, session, state } from "./page.js";
import {
  browse,
  closePanel,
  createForm,
  inviteLink,
  reports,
  searchMessages,
  toggleMembers,
} from "./panels.js";
import { bindControls, renderSidebar } from "./render.js";
import { markRead, older, openRoom } from "./rooms.js";
import { acceptInviteFromLink, showSignIn, signIn, signOut, start } from "./session.js";
import { logOf } from "./store.js";
import { bindThread, closeThread, openThread, readToEnd } from "./threads.js";

function wire() {
  // "Reply in thread" and a root's "N replies" open the thread pane (threads.js).
  const acts = { ...actions, thread: (message) => openThread(message.id, message.room) };
  bindControls({ openRoom, older, actions: acts, message: messageUser });
  bindThread();
  bindPicker();
  $("new-dm-button").addEventListener("click", newMessage);
  $("add-people-button").addEventListener("click", addPeople);
  $("leave-button").addEventListener("click", leave);
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
    if (list.scrollTop < 40 && state.current !== null && logOf(state, state.current).hasMore)
      older();
    markRead();
  });
  document.addEventListener("visibilitychange", () => {
    markRead();
    if (state.thread !== null) readToEnd(state.thread); // replies that came while away
  });
  window.addEventListener("hashchange", async () => {
    if (!state.me) return; // signing in handles it
    await acceptInviteFromLink();
    renderSidebar();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || /** @type {HTMLDialogElement} */ ($("picker")).open) return;
    // Escape closes the thread pane when focus is in it (or no panel is open), else a panel.
    const pane = $("thread");
    if (!pane.hidden && (pane.contains(document.activeElement) || $("panel").hidden)) {
      closeThread();
    } else closePanel();
  });
  // For the browser tests and the curious: the client's state, read-only by convention.
  window.sphere = { state, link: () => session.link };
}

wire();
start().catch((error) => {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) showSignIn();
  else failure(error);
});
