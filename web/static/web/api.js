// The REST API as the page uses it: same-origin JSON with the session cookie, and Django's
// CSRF token (set as a cookie by the page) on every call that writes.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "error";
    this.fields = (body && body.fields) || null;
    this.retryAfter = null;
  }
}

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  return found ? decodeURIComponent(found.slice("csrftoken=".length)) : "";
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { code: "network", message: "The server could not be reached." });
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const failure = new ApiError(response.status, data);
    failure.retryAfter = Number(response.headers.get("Retry-After")) || null;
    throw failure;
  }
  return data;
}

// Every page of a list ({results, next}), following ``next``.
export async function apiAll(path, limit = 10) {
  const items = [];
  let next = path;
  for (let page = 0; next && page < limit; page += 1) {
    const data = await api("GET", next);
    items.push(...data.results);
    const url = data.next ? new URL(data.next, location.origin) : null;
    next = url ? url.pathname + url.search : null;
  }
  return items;
}
