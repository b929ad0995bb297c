// The executions list. New executions appear through a periodic REST refresh;
// each visible execution that has not ended is followed live over its own stream.

import { api, apiAll } from "./api.js";
import { ExecutionStream, TERMINAL_STATUSES } from "./execution-stream.js";
import { badge, formatAgo, formatSeconds, h, progressBar, setBadge, setProgress, show } from "./ui.js";

const REFRESH_MS = Number(document.getElementById("executions").dataset.refreshMs) || 5000;
const table = document.querySelector("#executions tbody");
const rows = new Map(); // execution id -> {row, stream}
const workflowNames = new Map();
let statusFilter = "";

async function loadWorkflowNames(ids) {
  if (ids.every((id) => workflowNames.has(id))) return;
  for (const workflow of await apiAll("/workflows")) workflowNames.set(workflow.id, workflow.name);
}

function createRow(execution) {
  const link = `/executions/${execution.id}/`;
  const row = h(
    "tr",
    { "data-execution-id": execution.id, class: "row-link" },
    h("td", { class: "cell-status" }, badge(execution.status)),
    h("td", {}, h("a", { href: link, class: "cell-workflow" }, workflowNames.get(execution.workflow_id) ?? "…")),
    h("td", { class: "col-progress" },
      h("div", { class: "progress-cell" }, progressBar(execution.progress, execution.status),
        h("span", { class: "progress-text" }, `${execution.progress}%`))),
    h("td", { class: "cell-message" }, execution.message),
    h("td", { class: "cell-created", title: execution.created_at }, formatAgo(execution.created_at)),
    h("td", { class: "num cell-duration" }, formatSeconds(execution.execution_time)),
  );
  row.dataset.status = execution.status;
  row.addEventListener("click", (event) => {
    if (!event.target.closest("a")) window.location.assign(link);
  });
  return row;
}

function updateRow(row, state) {
  setBadge(row.querySelector(".badge"), state.status);
  setProgress(row.querySelector(".progress"), state.progress, state.status);
  row.querySelector(".progress-text").textContent = `${state.progress}%`;
  row.querySelector(".cell-message").textContent = state.message;
  row.querySelector(".cell-duration").textContent = formatSeconds(state.execution_time);
  row.dataset.status = state.status;
}

function followLive(entry, execution) {
  if (entry.stream || TERMINAL_STATUSES.has(execution.status)) return;
  entry.stream = new ExecutionStream(execution.id, {
    onStatus: (message) => updateRow(entry.row, message),
    onEnd: () => {
      entry.stream = null;
    },
  }).start();
}

async function refresh() {
  const query = statusFilter ? `?status=${statusFilter}` : "";
  const page = await api("GET", `/executions${query}`);
  await loadWorkflowNames(page.results.map((execution) => execution.workflow_id));
  const visible = new Set();
  for (const execution of page.results) {
    visible.add(execution.id);
    let entry = rows.get(execution.id);
    if (!entry) {
      entry = { row: createRow(execution), stream: null };
      rows.set(execution.id, entry);
    } else if (!entry.stream) {
      updateRow(entry.row, execution); // a live stream knows better than this page
    }
    entry.row.querySelector(".cell-created").textContent = formatAgo(execution.created_at);
    table.append(entry.row); // in the API's order
    followLive(entry, execution);
  }
  for (const [id, entry] of rows) {
    if (visible.has(id)) continue;
    entry.stream?.stop();
    entry.row.remove();
    rows.delete(id);
  }
  document.getElementById("executions-empty").hidden = rows.size > 0;
  show(document.getElementById("executions-error"), "");
}

async function refreshSafely() {
  try {
    await refresh();
  } catch (error) {
    show(document.getElementById("executions-error"), `Could not refresh: ${error.message}`);
  }
}

document.getElementById("status-filter").addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  statusFilter = button.dataset.status;
  for (const other of button.parentElement.children) other.setAttribute("aria-pressed", other === button);
  refreshSafely();
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refreshSafely();
});
setInterval(refreshSafely, REFRESH_MS);
refreshSafely();
