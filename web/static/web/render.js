// Drawing the page from the store: the room list, the open room and its messages, who is
// typing, the members panel.

import { $, state } from "./page.js";
import { canModerate, dmName, isDm, isGroupDm, logOf, otherNames, sidebarRooms } from "./store.js";
import { el, messageItem, roomEntry } from "./view.js";

// What the drawn controls do. The modules that act (opening a room, sending, moderating,
// starting a DM) draw through this one, so they are handed in by app.js rather than imported
// here in a circle.
const controls = { openRoom: () => {}, older: () => {}, actions: {}, message: () => {} };

export function bindControls({ openRoom, older, actions, message }) {
  Object.assign(controls, { openRoom, older, actions, message });
}

export function renderSidebar() {
  const { groups, dms } = sidebarRooms(state);
  const entry = (room) =>
    roomEntry(room, { current: state.current, onOpen: controls.openRoom, me: state.me });
  $("room-list").replaceChildren(
    ...[...groups].map(([slug, rooms]) => {
      const community = state.communities.get(slug);
      return el(
        "li",
        { class: "community" },
        el("h2", { text: community ? community.name : slug }),
        el("ul", {}, rooms.map(entry)),
      );
    }),
  );
  // Direct messages below the communities' rooms (docs/web-client.md, "Direct messages").
  $("dm-list").replaceChildren(...dms.map(entry));
}

export function renderRoom() {
  renderHeader();
  const open = state.current !== null && state.rooms.has(state.current);
  $("composer").hidden = !open;
  $("room-tools").hidden = !open;
  if (!open) {
    $("messages").replaceChildren();
    $("typing").textContent = "";
  }
}

export function renderHeader() {
  const room = state.rooms.get(state.current);
  const dm = isDm(room);
  $("room-title").textContent = !room
    ? "Pick a room"
    : dm
      ? dmName(room, state.me)
      : `#${room.name}${room.private ? " (private)" : ""}`;
  $("room-topic").textContent = room && !dm ? room.topic : "";
  // A group DM's header lists its members (the reader as "you") and offers adding and leaving;
  // a two-person DM neither (docs/web-client.md, "Direct messages").
  const group = isGroupDm(room);
  const people = $("room-people");
  people.hidden = !group;
  people.textContent = group ? `Members: ${[...otherNames(room, state.me), "you"].join(", ")}` : "";
  $("add-people-button").hidden = !group;
  $("leave-button").hidden = !group;
  const moderating = room ? canModerate(state, room.id) : false;
  const community = room && !dm && state.communities.get(room.community);
  $("reports-button").hidden = !moderating;
  $("invite-button").hidden = !(community && ["owner", "admin"].includes(community.my_role));
}

// The message list is updated in place: a message whose version did not change keeps its
// node (and with it keyboard focus, an open reaction menu, and screen readers' quiet).
let shown = { room: null, nodes: new Map() }; // key -> {sig, node}

export function renderMessages(toBottom = false) {
  const roomId = state.current;
  const list = $("messages");
  if (roomId === null) return;
  if (shown.room !== roomId) {
    shown = { room: roomId, nodes: new Map() };
    list.replaceChildren();
  }
  const held = logOf(state, roomId);
  const stick = toBottom || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const anchor = list.scrollHeight - list.scrollTop;
  const moderating = canModerate(state, roomId);
  const options = { me: state.me, canModerate: moderating, actions: controls.actions };
  const wanted = [];
  if (held.hasMore && held.loaded) {
    wanted.push({
      key: "older",
      sig: "",
      make: () =>
        el(
          "li",
          { class: "older" },
          el("button", {
            type: "button",
            class: "link",
            text: "Load older messages",
            onclick: controls.older,
          }),
        ),
    });
  }
  for (const message of held.ordered()) {
    const parent = message.reply_to ? held.byId(message.reply_to) : null;
    wanted.push({
      key: `m${message.id}`,
      sig: JSON.stringify([
        message.event_seq,
        message.body,
        message.deleted,
        message.edited_at,
        message.reactions,
        parent && [parent.event_seq, parent.deleted],
        message.thread,
        moderating,
      ]),
      make: () => messageItem(message, { ...options, parent }),
    });
  }
  for (const item of state.pending.values()) {
    if (item.room !== roomId || (item.message_id && held.byId(item.message_id))) continue;
    if (item.thread_root) continue; // a reply shows in its thread's pane (threads.js)
    const message = {
      id: null,
      seq: null,
      author: state.me,
      body: item.body,
      reply_to: item.reply_to,
      reactions: [],
    };
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

export function renderTyping() {
  const typing = state.typing.get(state.current);
  const now = Date.now();
  const names = typing ? [...typing.values()].filter((t) => t.until > now).map((t) => t.name) : [];
  $("typing").textContent = names.length
    ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…`
    : "";
}

export function renderMembers() {
  if ($("members").hidden || !state.members) return;
  $("member-list").replaceChildren(
    ...state.members.map((m) =>
      el(
        "li",
        {},
        el("span", {
          class: state.online.has(m.user.id) ? "dot online" : "dot",
          "aria-hidden": "true",
        }),
        el("span", { class: "who", text: m.user.username }),
        el("span", {
          class: "muted role",
          text: ` ${m.role}${state.online.has(m.user.id) ? ", online" : ""}`,
        }),
        // Anyone but oneself can be messaged from here (a DM of the two, opened or made).
        state.me && m.user.id !== state.me.id
          ? el("button", {
              type: "button",
              class: "secondary small",
              text: "Message",
              "aria-label": `Message ${m.user.username}`,
              dataset: { user: String(m.user.id) },
              onclick: () => controls.message(m.user),
            })
          : null,
      ),
    ),
  );
}
