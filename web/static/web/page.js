// What the page's modules share: the one store, the socket link of the signed-in account, and
// the notice line.

import { ApiError } from "./api.js";
import { createState } from "./store.js";

export const $ = (id) => document.getElementById(id);

export const state = createState();

// Set by signing in, stopped and dropped by signing out or in again.
/** @type {{link: import("./link.js").Link | null}} */
export const session = { link: null };

export function notify(text, kind = "info") {
  const notice = $("notice");
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = !text;
}

export function failure(error) {
  if (error instanceof ApiError) {
    const wait = error.retryAfter ? ` Try again in ${Math.ceil(error.retryAfter)} s.` : "";
    notify(`${error.message}${wait}`, "error");
  } else {
    notify(String(error), "error");
  }
}
