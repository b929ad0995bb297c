// Small DOM helpers shared by the dashboard's pages. Text always goes in as text.

import { format, gettext, language } from "./i18n.js";

export const STATUS_LABELS = {
  pending: gettext("Pending"),
  running: gettext("Running"),
  completed: gettext("Completed"),
  failed: gettext("Failed"),
  cancelled: gettext("Cancelled"),
  skipped: gettext("Skipped"),
};

/** `h("td", {class: "num"}, "text", child)`: an element with attributes and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const CONNECTION_TEXT = {
  connecting: gettext("Connecting…"),
  live: gettext("Live"),
  reconnecting: gettext("Reconnecting…"),
  ended: gettext("Ended"),
  failed: gettext("Disconnected"),
  stopped: gettext("Stopped"),
};

/** Show a socket's state (an `onStateChange` of ExecutionStream or ExecutionSocket) in `element`. */
export function setConnection(element, state, detail) {
  element.dataset.state = state;
  element.dataset.reconnects = detail.reconnects;
  element.textContent = CONNECTION_TEXT[state] ?? state;
}

export function badge(status) {
  return h("span", { class: "badge", "data-status": status }, STATUS_LABELS[status] ?? status);
}

export function setBadge(element, status) {
  element.dataset.status = status;
  element.textContent = STATUS_LABELS[status] ?? status;
}

export function progressBar(progress, status) {
  const bar = h("div", { class: "progress progress-small", role: "progressbar", "aria-valuenow": progress });
  bar.append(h("div", { class: "progress-fill", "data-status": status, style: `width: ${progress}%` }));
  return bar;
}

export function setProgress(bar, progress, status) {
  bar.setAttribute("aria-valuenow", progress);
  const fill = bar.querySelector(".progress-fill");
  fill.style.width = `${progress}%`;
  fill.dataset.status = status;
}

export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return format(gettext("%(seconds)s s"), { seconds: seconds.toFixed(2) });
  const minutes = Math.floor(seconds / 60);
  return format(gettext("%(minutes)s min %(seconds)s s"), {
    minutes,
    seconds: Math.round(seconds - minutes * 60),
  });
}

export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString(language, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function formatClock(iso) {
  const date = new Date(iso);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** "3 min ago" for recent times, else the date. */
export function formatAgo(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (seconds < 10) return gettext("just now");
  if (seconds < 60) return format(gettext("%(count)s s ago"), { count: Math.floor(seconds) });
  if (seconds < 3600) return format(gettext("%(count)s min ago"), { count: Math.floor(seconds / 60) });
  if (seconds < 86400) return format(gettext("%(count)s h ago"), { count: Math.floor(seconds / 3600) });
  return formatTime(iso);
}

export function show(element, text) {
  element.textContent = text ?? "";
  element.hidden = !text;
}

/** Parse JSON typed by a person; the error names the line and column. */
export function parseJson(text) {
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    return { error: format(gettext("Not valid JSON: %(error)s"), { error: error.message }) };
  }
}
