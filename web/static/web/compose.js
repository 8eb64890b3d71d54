// Sending, and the acts on a message. A message is sent with a client_msg_id: shown at once,
// replaced by the real one on its ack, and sent again with the same id after a reconnect (the
// server answers a repeat with the original, never a second message).

import { api } from "./api.js";
import { $, failure, notify, session, state } from "./page.js";
import { renderMessages } from "./render.js";
import { excerpt } from "./view.js";

export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `w-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export function send(event) {
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

export function transmit(item) {
  const link = session.link;
  if (!link) return;
  /** @type {import("./types.js").MessageSendFrame} */
  const frame = {
    type: "message.send",
    room: item.room,
    client_msg_id: item.id,
    body: item.body,
    ref: item.id,
  };
  if (item.reply_to) frame.reply_to = item.reply_to;
  if (item.thread_root) frame.thread_root = item.thread_root; // a reply (docs/threads.md)
  item.status = "sending";
  link.send(frame); // not open: sent again, with the same id, once the link is live
}

export const actions = {
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
      await api("POST", `/api/v1/communities/${room.community}/bans/`, {
        user_id: message.author.id,
        reason,
      });
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

export function setReply(message) {
  state.replyTo = message;
  $("replying").hidden = !message;
  $("replying-text").textContent = message
    ? `Replying to ${message.author.username}: ${excerpt(message.body, 60)}`
    : "";
}

export function typed() {
  const now = Date.now();
  const link = session.link;
  if (state.current === null || now - state.typedAt < 3000 || !link) return;
  state.typedAt = now;
  link.send({ type: "typing", room: state.current });
}
