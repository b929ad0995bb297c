// The live page of one execution: status, progress, nodes, streamed output, logs
// and outcome, replayed from the first event and then followed live.

import { api } from "./api.js";
import { DagView } from "./dag.js";
import { ExecutionStream, TERMINAL_STATUSES } from "../workflow-push/execution-stream.js";
import { format, gettext } from "./i18n.js";
import { StreamPanels } from "./stream-panels.js";
import { STATUS_LABELS, formatClock, formatSeconds, formatTime, h, setBadge, setConnection, show } from "./ui.js";

const $ = (id) => document.getElementById(id);
const root = $("execution-page");
const executionId = root.dataset.executionId;
const log = $("log");
const follow = $("follow");
const panels = new StreamPanels($("streams-card"));
let dag = null;
// Runs started as the stream tells (each claim moves it to running) and runs shown.
let runsStarted = 0;
let runsShown = 0;
let lastStatus = null;

function showStatus(message) {
  if (message.status === "running" && lastStatus !== "running") {
    runsStarted += 1;
    if (runsStarted > runsShown) showTimes().catch(() => {});
  }
  lastStatus = message.status;
  setBadge($("status"), message.status);
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", message.progress);
  const fill = bar.querySelector(".progress-fill");
  fill.style.width = `${message.progress}%`;
  fill.dataset.status = message.status;
  $("progress-value").textContent = `${message.progress}%`;
  $("message").textContent = message.message;
  $("event-count").textContent = message.seq;
  const finished = TERMINAL_STATUSES.has(message.status);
  $("cancel").hidden = finished;
  if (message.status === "running" && $("started-at").dataset.set !== "1") {
    $("started-at").textContent = formatTime(message.timestamp);
  }
  if (finished) showOutcome(message);
}

function showOutcome(message) {
  $("outcome-waiting").hidden = true;
  $("finished-at").textContent = formatTime(message.timestamp);
  $("duration").textContent = formatSeconds(message.execution_time);
  if (message.status === "completed") {
    $("outcome-title").textContent = gettext("Result");
    $("result").textContent = JSON.stringify(message.result, null, 2);
    $("result").hidden = false;
  } else {
    $("outcome-title").textContent = message.status === "failed" ? gettext("Error") : gettext("Cancelled");
    show($("error"), message.error ?? message.message);
  }
}

function showNode(message) {
  dag.update(message);
  panels.node(message);
  const { total, done } = dag.summary();
  $("node-summary").textContent = nodeSummary(done, total);
}

function nodeSummary(done, total) {
  return format(gettext("%(done)s of %(total)s done"), { done, total });
}

function appendLog(message) {
  $("log-empty")?.remove();
  const line = h(
    "div",
    { class: "log-line", "data-seq": message.seq, "data-level": message.level },
    h("time", { datetime: message.timestamp }, formatClock(message.timestamp)),
    h("span", { class: "log-level" }, message.level),
    h("span", { class: "log-source" }, message.node_id ?? gettext("engine")),
    h("span", { class: "log-message" }, message.message),
  );
  log.append(line);
  if (follow.checked) log.scrollTop = log.scrollHeight;
}

function runOutcome(run) {
  if (!run.outcome) return STATUS_LABELS.running;
  return run.outcome === "requeued" ? gettext("Requeued") : (STATUS_LABELS[run.outcome] ?? run.outcome);
}

function showRuns(runs) {
  runsShown = runs.length;
  $("runs-card").hidden = runs.length === 0;
  const rows = runs.map((run) => {
    // Whether the process of a run still going sends its heartbeats.
    const state = run.worker_alive ? "alive" : "gone";
    const health = run.ended_at
      ? null
      : h("span", { class: "badge worker-state", "data-state": state }, run.worker_alive ? gettext("Alive") : gettext("Gone"));
    return h(
      "tr",
      { "data-run": run.number },
      h("td", { class: "num" }, run.number),
      h("td", {}, h("span", { class: "mono" }, run.worker || "–"), " ", health),
      h("td", {}, formatTime(run.started_at)),
      h("td", {}, formatTime(run.ended_at)),
      h("td", { title: run.reason || null }, runOutcome(run)),
    );
  });
  $("runs").querySelector("tbody").replaceChildren(...rows);
}

async function showTimes() {
  const execution = await api("GET", `/executions/${executionId}`);
  showRuns(execution.runs ?? []);
  $("created-at").textContent = formatTime(execution.created_at);
  if (execution.started_at) {
    $("started-at").textContent = formatTime(execution.started_at);
    $("started-at").dataset.set = "1";
  }
  if (execution.finished_at) $("finished-at").textContent = formatTime(execution.finished_at);
  if (execution.execution_time !== null) $("duration").textContent = formatSeconds(execution.execution_time);
  return execution;
}

async function cancel() {
  const button = $("cancel");
  button.disabled = true;
  button.textContent = gettext("Cancelling…");
  try {
    await api("POST", `/executions/${executionId}/cancel`);
  } catch (error) {
    show($("error"), error.message);
    button.disabled = false;
    button.textContent = gettext("Cancel");
  }
}

async function runAgain(execution) {
  $("run-again").disabled = true;
  try {
    const copy = await api("POST", "/executions", {
      workflow_id: execution.workflow_id,
      input_data: execution.input_data,
    });
    window.location.assign(`/executions/${copy.id}/`);
  } catch (error) {
    show($("error"), error.message);
    $("run-again").disabled = false;
  }
}

function watchScrolling() {
  // Scrolling up to read stops following the tail; scrolling back down resumes it.
  log.addEventListener("scroll", () => {
    follow.checked = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  });
  follow.addEventListener("change", () => {
    if (follow.checked) log.scrollTop = log.scrollHeight;
  });
}

async function main() {
  const execution = await showTimes();
  $("input-data").textContent = JSON.stringify(execution.input_data, null, 2);
  // The definition this execution runs, not the workflow's as edited since.
  const definition = execution.definition;
  dag = new DagView($("dag"), definition);
  $("node-summary").textContent = nodeSummary(0, definition.nodes.length);
  // The output so far, at once. The replay below rebuilds it as it goes (each
  // node's `running` event clears its panels), so none of it is shown twice.
  panels.fill(execution.nodes);
  $("cancel").addEventListener("click", cancel);
  $("run-again").addEventListener("click", () => runAgain(execution));
  watchScrolling();
  new ExecutionStream(executionId, {
    lastSeq: 0,
    onStatus: showStatus,
    onNode: showNode,
    onLog: appendLog,
    onChunk: (message) => panels.chunk(message),
    onEnd: async () => {
      await showTimes().catch(() => {});
      root.dataset.settled = "true"; // the final state, times included, is on the page
    },
    onFail: ({ code }) => show($("error"), format(gettext("The stream was refused (%(code)s); reload the page."), { code })),
    onStateChange: (state, detail) => setConnection($("connection"), state, detail),
  }).start();
}

main().catch((error) => show($("error"), error.message));
