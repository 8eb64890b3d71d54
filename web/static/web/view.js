// Building the page's pieces. Text from the server is only ever set as text (textContent),
// never as markup.

import { dmName, isDm, repliesLabel } from "./store.js";

export const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

export function clock(iso) {
  const when = new Date(iso);
  const today = new Date();
  const sameDay = when.toDateString() === today.toDateString();
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${when.toLocaleDateString()} ${time}`;
}

export function excerpt(text, length = 80) {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

// One message of the log. ``actions`` has the callbacks; ``canModerate`` shows the moderator's
// acts; ``pending`` is a message not acknowledged yet (sending, failed) or acknowledged but
// not yet received. ``inThread``: drawn in the thread pane (no inline reply, no thread acts);
// elsewhere a top-level message offers "Reply in thread" and a root shows its replies
// (docs/web-client.md, "Threads").
export function messageItem(
  message,
  { me, parent, canModerate, actions, pending = null, inThread = false },
) {
  const mine = message.author.id === me.id;
  const status = pending
    ? el("span", {
        class: `status ${pending.status}`,
        text: pending.status === "failed" ? `not sent: ${pending.error}` : "sending…",
      })
    : null;
  const meta = el(
    "div",
    { class: "meta" },
    el("span", { class: "author", text: message.author.username }),
    message.created_at
      ? el("time", { datetime: message.created_at, text: clock(message.created_at) })
      : null,
    message.edited_at && !message.deleted
      ? el("span", { class: "edited", text: "(edited)" })
      : null,
    status,
  );
  const reply = message.reply_to
    ? el(
        "blockquote",
        { class: "reply" },
        parent
          ? `↪ ${parent.author.username}: ${parent.deleted ? "(deleted)" : excerpt(parent.body, 60)}`
          : "↪ an earlier message",
      )
    : null;
  const body = message.deleted
    ? el("p", { class: "body deleted", text: "This message was deleted." })
    : el("p", { class: "body", text: message.body });
  const replies = !inThread && !pending ? repliesLabel(message) : "";
  const summary = replies
    ? el(
        "p",
        { class: "thread-summary" },
        el("button", {
          type: "button",
          class: "link replies",
          text: replies,
          "aria-label": `${replies}: open the thread`,
          onclick: () => actions.thread(message),
        }),
        message.thread.last_reply_at
          ? el(
              "span",
              { class: "muted" },
              " · last reply ",
              el("time", {
                datetime: message.thread.last_reply_at,
                text: clock(message.thread.last_reply_at),
              }),
            )
          : null,
      )
    : null;
  const reactions = (message.reactions || []).length
    ? el(
        "ul",
        { class: "reactions", "aria-label": "Reactions" },
        message.reactions.map((r) =>
          el(
            "li",
            {},
            el("button", {
              type: "button",
              class: r.me ? "chip mine" : "chip",
              "aria-pressed": r.me ? "true" : "false",
              "aria-label": `${r.emoji} ${r.count}${r.me ? ", yours: remove it" : ": add yours"}`,
              text: `${r.emoji} ${r.count}`,
              onclick: () => actions.react(message, r.emoji, !r.me),
            }),
          ),
        ),
      )
    : null;
  let tools = null;
  if (pending && pending.status === "failed") {
    tools = el(
      "div",
      { class: "actions" },
      el("button", { type: "button", text: "Retry", onclick: () => actions.retry(pending) }),
      el("button", {
        type: "button",
        class: "secondary",
        text: "Discard",
        onclick: () => actions.discard(pending),
      }),
    );
  } else if (!pending && !message.deleted) {
    tools = el(
      "div",
      {
        class: "actions",
        role: "group",
        "aria-label": `Actions on ${message.author.username}'s message`,
      },
      inThread
        ? null
        : el("button", { type: "button", text: "Reply", onclick: () => actions.reply(message) }),
      inThread || message.thread_root
        ? null
        : el("button", {
            type: "button",
            class: "thread-button",
            text: "Reply in thread",
            onclick: () => actions.thread(message),
          }),
      el(
        "details",
        { class: "react" },
        el("summary", { text: "React" }),
        REACTIONS.map((emoji) =>
          el("button", {
            type: "button",
            "aria-label": `React ${emoji}`,
            text: emoji,
            onclick: () => actions.react(message, emoji, true),
          }),
        ),
      ),
      mine
        ? el("button", { type: "button", text: "Edit", onclick: () => actions.edit(message) })
        : null,
      mine || canModerate
        ? el("button", { type: "button", text: "Delete", onclick: () => actions.remove(message) })
        : null,
      mine
        ? null
        : el("button", { type: "button", text: "Report", onclick: () => actions.report(message) }),
      canModerate && !mine
        ? [
            el("button", {
              type: "button",
              class: "mod",
              text: "Mute author",
              onclick: () => actions.mute(message),
            }),
            el("button", {
              type: "button",
              class: "mod",
              text: "Ban author",
              onclick: () => actions.ban(message),
            }),
          ]
        : null,
    );
  }
  return el(
    "li",
    {
      class: `message${mine ? " mine" : ""}${pending ? " pending" : ""}`,
      // The pane's copy of a message takes another id than the room's (no duplicate ids).
      id: message.id
        ? `${inThread ? "t" : "m"}-${message.id}`
        : `${inThread ? "tp" : "p"}-${pending.id}`,
      dataset: { seq: String(message.seq || "") },
    },
    meta,
    reply,
    body,
    reactions,
    summary,
    tools,
  );
}

// One entry of the sidebar: a channel (`#name`, "private" badge) or a DM (its other members'
// names), with its unread count.
export function roomEntry(room, { current, onOpen, me = null }) {
  const dm = isDm(room);
  const name = dm ? dmName(room, me) : room.name;
  const unread =
    room.unread > 0 ? el("span", { class: "unread", text: String(room.unread) }) : null;
  const kind = dm ? "direct message with " : room.private ? "private room " : "room ";
  return el(
    "li",
    {},
    el(
      "button",
      {
        type: "button",
        class: `${room.id === current ? "room current" : "room"}${dm ? " dm" : ""}`,
        "aria-current": room.id === current ? "true" : null,
        "aria-label": `${kind}${name}${room.unread ? `, ${room.unread} unread` : ""}`,
        dataset: { room: String(room.id) },
        onclick: () => onOpen(room.id),
      },
      el("span", { class: "hash", "aria-hidden": "true", text: dm ? "@" : "#" }),
      el("span", { class: "name", text: name }),
      room.private && !dm
        ? el("span", { class: "badge", "aria-hidden": "true", text: "private" })
        : null,
      unread,
    ),
  );
}

export function panel(title, onClose, ...content) {
  return [
    el(
      "div",
      { class: "panel-head" },
      el("h2", { text: title }),
      el("button", { type: "button", class: "secondary", text: "Close", onclick: onClose }),
    ),
    ...content,
  ];
}
