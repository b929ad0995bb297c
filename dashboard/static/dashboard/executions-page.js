// The executions list, on one socket: the executions feed with the page's filters
// brings the newest executions first, then each new one and each change as it happens.

import { apiAll } from "./api.js";
import { ExecutionSocket } from "../workflow-push/execution-socket.js";
import { format, gettext } from "./i18n.js";
import { badge, formatAgo, formatSeconds, h, progressBar, setBadge, setConnection, setProgress, show } from "./ui.js";

// Rows kept at most: past it the oldest go, and changes of executions older
// than the last row are not shown.
const MAX_ROWS = 500;
const AGO_REFRESH_MS = 15000;

const $ = (id) => document.getElementById(id);
const table = document.querySelector("#executions tbody");
const rows = new Map(); // execution id -> {row, state, seq}
const filters = readFilters();
let live = false;

const socket = new ExecutionSocket({
  onStateChange: (state, detail) => {
    live = state === "live";
    setConnection($("connection"), state, detail);
    showEmpty();
  },
  onFail: ({ code }) => show($("executions-error"), format(gettext("The list was refused (%(code)s); reload the page."), { code })),
});

/** The filters from the address (`?status=&workflow=&tag=`), so that a filtered list can be linked to. */
function readFilters() {
  const query = new URLSearchParams(location.search);
  return { status: query.get("status") ?? "", workflow: query.get("workflow") ?? "", tag: query.get("tag") ?? "" };
}

function writeFilters() {
  const query = new URLSearchParams(Object.entries(filters).filter(([, value]) => value)).toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

// Rows

function tagChips(tags) {
  const only = gettext("Only “%(tag)s”");
  return tags.map((tag) => h("button", { type: "button", class: "tag", "data-tag": tag, title: format(only, { tag }) }, tag));
}

function createRow(state) {
  const link = `/executions/${state.id}/`;
  const row = h(
    "tr",
    { "data-execution-id": state.id, class: "row-link" },
    h("td", { class: "cell-status" }, badge(state.status)),
    h("td", {}, h("a", { href: link, class: "cell-workflow" }, state.workflow_name)),
    h("td", {}, h("div", { class: "cell-tags" }, tagChips(state.tags))),
    h("td", { class: "col-progress" },
      h("div", { class: "progress-cell" }, progressBar(state.progress, state.status),
        h("span", { class: "progress-text" }, `${state.progress}%`))),
    h("td", { class: "cell-message" }, state.message),
    h("td", { class: "cell-created", title: state.created_at }, formatAgo(state.created_at)),
    h("td", { class: "num cell-duration" }, formatSeconds(state.execution_time)),
  );
  row.addEventListener("click", (event) => {
    const tag = event.target.closest(".tag");
    if (tag) applyFilters({ tag: tag.dataset.tag });
    else if (!event.target.closest("a")) window.location.assign(link);
  });
  return row;
}

/** Show `state` (a feed state, or a status message) in the row, unless the row shows a newer one. */
function updateRow(entry, state, seq) {
  if (seq <= entry.seq) return;
  entry.seq = seq;
  const { row } = entry;
  setBadge(row.querySelector(".badge"), state.status);
  setProgress(row.querySelector(".progress"), state.progress, state.status);
  row.querySelector(".progress-text").textContent = `${state.progress}%`;
  row.querySelector(".cell-message").textContent = state.message;
  row.querySelector(".cell-duration").textContent = formatSeconds(state.execution_time);
  row.dataset.status = state.status;
}

/** Newest first: by creation time, then id, as the feed's first executions come. */
function isNewer(state, other) {
  return state.created_at > other.created_at || (state.created_at === other.created_at && state.id > other.id);
}

function insertRow(entry) {
  const before = [...table.children].find((row) => isNewer(entry.state, rows.get(row.dataset.executionId).state));
  table.insertBefore(entry.row, before ?? null);
}

function oldestEntry() {
  return rows.get(table.lastElementChild?.dataset.executionId);
}

function removeRow(id) {
  const entry = rows.get(id);
  if (!entry) return;
  entry.row.remove();
  rows.delete(id);
}

// The feed

function showExecution(state) {
  const entry = rows.get(state.id);
  if (filters.status && state.status !== filters.status) {
    // The feed tells of an execution leaving its status filter once, with that state.
    removeRow(state.id);
    showEmpty();
    return;
  }
  if (entry) {
    updateRow(entry, state, state.last_seq);
  } else {
    const oldest = oldestEntry();
    if (rows.size >= MAX_ROWS && oldest && !isNewer(state, oldest.state)) return;
    const created = { row: createRow(state), state, seq: -1 };
    updateRow(created, state, state.last_seq);
    rows.set(state.id, created);
    insertRow(created);
    while (rows.size > MAX_ROWS) removeRow(oldestEntry().state.id);
  }
  showEmpty();
}

function followFeed() {
  for (const id of [...rows.keys()]) removeRow(id);
  socket.feed(
    { status: filters.status ? [filters.status] : [], workflow_id: filters.workflow, tag: filters.tag },
    {
      onExecution: showExecution,
      onFail: ({ reason }) => show($("executions-error"), format(gettext("The list could not be followed: %(reason)s"), { reason })),
    },
  );
  show($("executions-error"), "");
  showEmpty();
}

function showEmpty() {
  $("executions-empty").hidden = !live || rows.size > 0;
}

// Filters

function applyFilters(changed) {
  Object.assign(filters, changed);
  showFilters();
  writeFilters();
  followFeed();
}

function showFilters() {
  for (const button of $("status-filter").children) {
    button.setAttribute("aria-pressed", button.dataset.status === filters.status);
  }
  $("workflow-filter").value = filters.workflow;
  $("tag-filter").value = filters.tag;
}

async function loadWorkflows() {
  const select = $("workflow-filter");
  for (const workflow of await apiAll("/workflows")) {
    select.append(h("option", { value: workflow.id }, workflow.name));
  }
  select.value = filters.workflow;
}

$("status-filter").addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (button) applyFilters({ status: button.dataset.status });
});
$("workflow-filter").addEventListener("change", (event) => applyFilters({ workflow: event.target.value }));
$("tag-filter").addEventListener("change", (event) => applyFilters({ tag: event.target.value.trim() }));
setInterval(() => {
  for (const { row, state } of rows.values()) row.querySelector(".cell-created").textContent = formatAgo(state.created_at);
}, AGO_REFRESH_MS);

showFilters();
followFeed();
socket.start();
loadWorkflows().catch((error) =>
  show($("executions-error"), format(gettext("Could not list the workflows: %(error)s"), { error: error.message })),
);
