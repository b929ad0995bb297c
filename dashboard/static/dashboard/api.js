// The REST API as the dashboard calls it: JSON, the session cookie and its CSRF token.
// The API answers in the dashboard's language (its cookie, else Accept-Language).

import { format, gettext } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, data) {
    super(ApiError.describe(status, data));
    this.status = status;
    this.data = data;
  }

  /** A sentence from DRF's error body: `detail`, or the first message per field. */
  static describe(status, data) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && typeof data === "object") {
      return Object.entries(data)
        .map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`)
        .join("; ");
    }
    return format(gettext("The server answered %(status)s."), { status });
  }
}

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** Call the API: `path` under /api/v1 (or a full URL from a `next` link). */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const url = path.startsWith("http") ? path : `/api/v1${path}`;
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    // The session ended (logged out in another tab, or expired): log in again.
    window.location.assign(`/login/?next=${encodeURIComponent(location.pathname)}`);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Every item of a paginated list (`{next, results}`), following `next` up to `limit` pages. */
export async function apiAll(path, limit = 20) {
  const items = [];
  let next = path;
  for (let page = 0; next && page < limit; page += 1) {
    const data = await api("GET", next);
    items.push(...data.results);
    next = data.next;
  }
  return items;
}
