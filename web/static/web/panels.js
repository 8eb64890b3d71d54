// The side panels over the room: browsing and joining communities, making one, message
// search, the open reports of the room's community, an invite link; and the members aside.

import { api, apiAll } from "./api.js";
import { $, failure, notify, state } from "./page.js";
import { loadCommunities, loadMembers, openRoom } from "./rooms.js";
import { roomLabel } from "./store.js";
import { openThread } from "./threads.js";
import { el, excerpt, panel } from "./view.js";

function showPanel(...content) {
  const section = $("panel");
  section.replaceChildren(...content);
  section.hidden = false;
  const focusable = section.querySelector("input, button");
  if (focusable) focusable.focus();
}

export function closePanel() {
  $("panel").hidden = true;
  $("panel").replaceChildren();
}

export async function browse(query = "") {
  let found = [];
  try {
    found = await apiAll(`/api/v1/communities/?q=${encodeURIComponent(query)}`, 2);
  } catch (error) {
    failure(error);
  }
  const search = el("input", {
    type: "search",
    id: "browse-q",
    value: query,
    "aria-label": "Search communities",
  });
  const form = el(
    "form",
    {
      class: "row",
      onsubmit: (e) => {
        e.preventDefault();
        browse(search.value);
      },
    },
    search,
    el("button", { type: "submit", text: "Search" }),
  );
  const rows = found.map((c) =>
    el(
      "li",
      {},
      el("strong", { text: c.name }),
      ` · ${c.member_count} members · ${c.visibility} `,
      c.my_role
        ? el("span", { class: "muted", text: `(you: ${c.my_role})` })
        : el("button", {
            type: "button",
            text: c.visibility === "public" ? "Join" : "Ask to join",
            onclick: () => join(c),
          }),
      el("p", { class: "muted", text: c.description }),
    ),
  );
  showPanel(...panel("Communities", closePanel, form, el("ul", { class: "plain" }, rows)));
}

async function join(community) {
  try {
    await api("POST", `/api/v1/communities/${community.slug}/join`);
    await loadCommunities();
    notify(
      community.visibility === "public"
        ? `You joined ${community.name}.`
        : "Your request was sent to the admins.",
    );
    browse($("browse-q") ? $("browse-q").value : "");
  } catch (error) {
    failure(error);
  }
}

export function createForm() {
  const name = el("input", { id: "new-name", required: true, maxlength: "100" });
  const about = el("input", { id: "new-about", maxlength: "2000" });
  const visibility = el(
    "select",
    { id: "new-visibility" },
    el("option", { value: "public", text: "Public" }),
    el("option", { value: "private", text: "Private" }),
  );
  const form = el(
    "form",
    {
      class: "stack",
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const made = await api("POST", "/api/v1/communities/", {
            name: name.value,
            description: about.value,
            visibility: visibility.value,
          });
          await loadCommunities();
          closePanel();
          notify(`${made.name} is ready: its #general room is yours.`);
        } catch (error) {
          failure(error);
        }
      },
    },
    el("label", { for: "new-name", text: "Name" }),
    name,
    el("label", { for: "new-about", text: "Description" }),
    about,
    el("label", { for: "new-visibility", text: "Visibility" }),
    visibility,
    el("button", { type: "submit", text: "Create" }),
  );
  showPanel(...panel("New community", closePanel, form));
}

export async function searchMessages(event) {
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
        el("button", {
          type: "button",
          class: "link",
          text: room ? roomLabel(room, state.me) : `#${m.room}`,
          onclick: () => {
            closePanel();
            openRoom(m.room);
          },
        }),
        // A reply opens in its thread's pane (docs/web-client.md, "Threads").
        m.thread_root && room
          ? [
              " ",
              el("button", {
                type: "button",
                class: "link",
                text: "in a thread",
                onclick: () => {
                  closePanel();
                  openThread(m.thread_root, m.room);
                },
              }),
            ]
          : null,
        ` ${m.author.username}: `,
        el("span", { text: excerpt(m.body, 120) }),
      );
    });
    showPanel(
      ...panel(
        `Search: ${q}`,
        closePanel,
        rows.length ? el("ul", { class: "plain" }, rows) : el("p", { text: "Nothing found." }),
      ),
    );
  } catch (error) {
    failure(error);
  }
}

export async function reports() {
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
        el("p", {
          text: `${r.message.author.username}: ${r.message.deleted ? "(deleted)" : excerpt(r.message.body, 120)}`,
        }),
        el("p", {
          class: "muted",
          text: `reported by ${r.reporter ? r.reporter.username : "automod"}: ${r.reason}`,
        }),
        el(
          "div",
          { class: "row" },
          ["dismiss", "delete_message", "mute_author", "ban_author"].map((action) =>
            el("button", {
              type: "button",
              class: action === "dismiss" ? "secondary" : "",
              text: action.replace("_", " "),
              onclick: () => resolve(r, action),
            }),
          ),
        ),
      ),
    );
    showPanel(
      ...panel(
        "Open reports",
        closePanel,
        rows.length ? el("ul", { class: "plain" }, rows) : el("p", { text: "No open reports." }),
      ),
    );
  } catch (error) {
    failure(error);
  }
}

export async function inviteLink() {
  const room = state.rooms.get(state.current);
  if (!room) return;
  try {
    const invite = await api("POST", `/api/v1/communities/${room.community}/invites/`, {});
    const url = `${location.origin}/#/invite/${invite.code}`;
    showPanel(
      ...panel(
        "Invite link",
        closePanel,
        el("p", { text: "Anyone with this link can join:" }),
        el("input", { readonly: true, value: url, "aria-label": "Invite link" }),
      ),
    );
  } catch (error) {
    failure(error);
  }
}

export function toggleMembers() {
  const aside = $("members");
  aside.hidden = !aside.hidden;
  $("members-button").setAttribute("aria-expanded", String(!aside.hidden));
  if (!aside.hidden) loadMembers();
}
