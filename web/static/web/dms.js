// Direct messages (docs/web-client.md, "Direct messages"): starting one from a member list
// or from the picker dialog, and adding people to an open group DM or leaving it. The DM
// itself is a room: it arrives, changes and goes with the room frames (handlers.js).

import { api, apiAll } from "./api.js";
import { $, failure, notify, state } from "./page.js";
import { renderSidebar } from "./render.js";
import { openRoom } from "./rooms.js";
import { isGroupDm, pickable } from "./store.js";
import { el } from "./view.js";

const MAX_OTHERS = 9; // a DM has at most ten members, the caller included (docs/web-client.md)

// The picker's state while it is open: who it offers, who is picked, and what picking does.
const picker = {
  /** @type {import("./types.js").Member[]} */
  members: [],
  /** @type {import("./types.js").User[]} */
  found: [], // GET /api/v1/users/?q=: people sharing a community, by the filter's start
  /** @type {Map<number, import("./types.js").User>} */
  picked: new Map(),
  single: false, // "Add people": one user
  /** @type {number[]} */
  exclude: [],
  // What picking does; what it answers runs after the dialog closes.
  /** @type {(users: import("./types.js").User[]) => Promise<(() => unknown) | void>} */
  done: async () => {},
  /** @type {HTMLElement | null} */
  opener: null,
};

/**
 * A room the server answered with (a DM made or found): kept, drawn and opened. Its
 * `room.added` frame may come before or after; either merges into the same entry.
 * @param {import("./types.js").Room} room
 */
function take(room) {
  const known = state.rooms.get(room.id);
  state.rooms.set(room.id, known ? { ...known, ...room } : room);
  renderSidebar();
  return openRoom(room.id);
}

/**
 * The DM of the reader and `users`: 201 (new) or 200 (the one of exactly them).
 * @param {import("./types.js").User[]} users
 * @returns {Promise<import("./types.js").Room>}
 */
function findOrMakeDm(users) {
  return api("POST", "/api/v1/dms/", { user_ids: users.map((u) => u.id) });
}

/**
 * "Message" beside a member: the two-person DM with them. A refusal (403, the user may not be
 * messaged) shows the server's message.
 * @param {import("./types.js").User} user
 */
export async function messageUser(user) {
  try {
    await take(await findOrMakeDm([user]));
  } catch (error) {
    failure(error);
  }
}

/** Every member of the reader's communities, for the picker (each community's first pages). */
async function communityMembers() {
  const lists = await Promise.all(
    [...state.communities.keys()].map((slug) =>
      apiAll(`/api/v1/communities/${encodeURIComponent(slug)}/members/`, 5).catch(() => []),
    ),
  );
  return lists.flat();
}

export function newMessage() {
  return openPicker({
    title: "New message",
    hint: `Pick 1 to ${MAX_OTHERS} people from your communities.`,
    submit: "Start",
    single: false,
    exclude: [],
    // Opened once the dialog is closed: the page behind a modal dialog takes no focus.
    done: async (users) => {
      const room = await findOrMakeDm(users);
      return () => take(room);
    },
  });
}

export function addPeople() {
  const room = state.rooms.get(state.current);
  if (!isGroupDm(room)) return null;
  return openPicker({
    title: "Add people",
    hint: "Pick someone to add: they will read the whole conversation.",
    submit: "Add",
    single: true,
    exclude: room.members.map((u) => u.id),
    done: async ([user]) => {
      await api("POST", `/api/v1/rooms/${room.id}/members`, { user_id: user.id });
      notify(`${user.username} was added.`); // the header follows with room.updated
    },
  });
}

export async function leave() {
  const room = state.rooms.get(state.current);
  if (!isGroupDm(room)) return;
  try {
    // The room leaves the sidebar with the room.removed frame that follows (handlers.js).
    await api("POST", `/api/v1/rooms/${room.id}/leave`);
  } catch (error) {
    failure(error);
  }
}

async function openPicker({ title, hint, submit, single, exclude, done }) {
  const dialog = /** @type {HTMLDialogElement} */ ($("picker"));
  Object.assign(picker, {
    members: [],
    found: [],
    picked: new Map(),
    single,
    exclude,
    done,
    opener: /** @type {HTMLElement | null} */ (document.activeElement),
  });
  $("picker-title").textContent = title;
  $("picker-hint").textContent = hint;
  $("picker-submit").textContent = submit;
  $("picker-filter").value = "";
  $("picker-error").textContent = "";
  $("picker-list").replaceChildren();
  drawn = new Map();
  $("picker-count").textContent = "Loading…";
  if (!dialog.open) dialog.showModal();
  $("picker-filter").focus();
  try {
    picker.members = await communityMembers();
  } catch (error) {
    $("picker-error").textContent = error.message;
  }
  drawPicker();
}

/** @type {Map<number, HTMLElement>} the picker's entries drawn, by user id */
let drawn = new Map();

function drawPicker() {
  // The members lists' people and the search's, each once (pickable drops repeats).
  const offered = [...picker.members, ...picker.found.map((user) => ({ user }))];
  const users = pickable(offered, state.me, $("picker-filter").value, picker.exclude);
  const full = !picker.single && picker.picked.size >= MAX_OTHERS;
  // Updated in place: an entry already drawn keeps its node (and focus) when the search's
  // answer comes while someone is picking.
  const nodes = new Map();
  const list = $("picker-list");
  users.forEach((user, index) => {
    const checked = picker.picked.has(user.id);
    let node = drawn.get(user.id);
    if (!node) {
      const id = `pick-${user.id}`;
      node = el(
        "li",
        {},
        el("input", {
          type: picker.single ? "radio" : "checkbox",
          name: "pick",
          id,
          value: String(user.id),
          onchange: (event) => pick(user, event.target.checked),
        }),
        el("label", { for: id, text: user.username }),
      );
    }
    const box = /** @type {HTMLInputElement} */ (node.firstElementChild);
    box.checked = checked;
    box.disabled = full && !checked;
    nodes.set(user.id, node);
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  while (list.children.length > users.length) list.lastElementChild.remove();
  drawn = nodes;
  $("picker-empty").hidden = users.length > 0 || !offered.length;
  const names = [...picker.picked.values()].map((u) => u.username);
  $("picker-count").textContent = names.length
    ? `Picked: ${names.join(", ")}`
    : picker.single
      ? "Nobody picked yet."
      : `Nobody picked yet (up to ${MAX_OTHERS}).`;
}

/**
 * @param {import("./types.js").User} user
 * @param {boolean} on
 */
function pick(user, on) {
  if (picker.single) picker.picked.clear();
  if (on) picker.picked.set(user.id, user);
  else picker.picked.delete(user.id);
  $("picker-error").textContent = "";
  drawPicker();
}

// The filter also asks the server (`GET /api/v1/users/?q=`, docs/dms.md): someone of a
// community whose members list was cut short is still found by name. The latest answer wins.
let searching = 0;
async function search() {
  drawPicker();
  const query = $("picker-filter").value.trim();
  const asked = ++searching;
  if (!query) return;
  try {
    const found = await apiAll(`/api/v1/users/?q=${encodeURIComponent(query.slice(0, 32))}`, 1);
    if (asked !== searching) return;
    const known = new Map(picker.found.map((u) => [u.id, u]));
    for (const user of found) known.set(user.id, user);
    picker.found = [...known.values()];
    drawPicker();
  } catch {
    // The members lists still offer whom they hold.
  }
}

function closePicker() {
  const dialog = /** @type {HTMLDialogElement} */ ($("picker"));
  if (dialog.open) dialog.close();
}

async function submitPicker(event) {
  event.preventDefault();
  const users = [...picker.picked.values()];
  if (!users.length) {
    $("picker-error").textContent = "Pick someone first.";
    return;
  }
  const button = /** @type {HTMLButtonElement} */ ($("picker-submit"));
  button.disabled = true;
  try {
    const then = await picker.done(users);
    if (then) picker.opener = null; // focus goes to what is opened, not back to the button
    closePicker();
    if (then) await then();
  } catch (error) {
    // The server's message as it is: a 403 says the user may not be messaged.
    $("picker-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

// The dialog's controls, once: Escape closes it (the browser's own `cancel`), and focus
// returns to the button that opened it.
export function bindPicker() {
  const dialog = /** @type {HTMLDialogElement} */ ($("picker"));
  $("picker-form").addEventListener("submit", submitPicker);
  $("picker-filter").addEventListener("input", search);
  $("picker-cancel").addEventListener("click", closePicker);
  dialog.addEventListener("close", () => {
    const opener = picker.opener;
    picker.opener = null;
    if (opener && opener.isConnected && !opener.hidden) opener.focus();
  });
}
