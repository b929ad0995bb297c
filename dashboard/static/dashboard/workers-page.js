// The servers and workers, alive or gone, with what each runs and how it keeps
// up its leases: GET /api/v1/workers, read again at every heartbeat interval.

import { api } from "./api.js";
import { format, gettext, ngettext } from "./i18n.js";
import { formatTime, h, show } from "./ui.js";

const STATE_TEXT = {
  alive: gettext("Alive"),
  gone: gettext("Gone"),
  stopped: gettext("Stopped"),
};
const KIND_TEXT = { server: gettext("Server"), worker: gettext("Worker") };
const LEASE_TEXT = {
  ok: gettext("On time"),
  late: gettext("Renewed late"),
  expired: gettext("Expired"),
};

const body = document.querySelector("#workers tbody");
const failure = document.getElementById("workers-error");

/** alive, or (gone) stopped when it said so, else gone. */
function stateOf(worker) {
  return worker.state === "gone" && worker.stopped_at ? "stopped" : worker.state;
}

function kindText(worker) {
  if (worker.kind === "server" && worker.runs_executions) return gettext("Server, runs executions");
  return KIND_TEXT[worker.kind] ?? worker.kind;
}

function runsCell(worker) {
  if (!worker.runs_executions) return h("span", { class: "muted" }, "–");
  const count = format(ngettext("%(count)s execution", "%(count)s executions", worker.claimed), {
    count: worker.claimed,
  });
  const links = worker.executions.map((execution) =>
    h("a", { class: "mono", href: `/executions/${execution.id}/`, title: execution.workflow_name }, execution.id.slice(0, 8)),
  );
  const more = worker.claimed - worker.executions.length;
  return h(
    "div",
    { class: "worker-runs" },
    h("span", {}, count),
    links,
    more > 0 ? h("span", { class: "muted" }, format(gettext("and %(count)s more"), { count: more })) : null,
  );
}

function leasesCell(worker) {
  if (!worker.lease_health) return h("span", { class: "muted" }, "–");
  const title = format(gettext("The least recently renewed lease was renewed %(seconds)s s ago."), {
    seconds: worker.stalest_renewal.toFixed(1),
  });
  return h("span", { class: "lease", "data-health": worker.lease_health, title }, LEASE_TEXT[worker.lease_health]);
}

function row(worker) {
  const state = stateOf(worker);
  const seen = format(gettext("%(count)s s ago"), { count: worker.seen_ago.toFixed(1) });
  return h(
    "tr",
    { "data-worker-id": worker.id, "data-state": state },
    h("td", {}, h("span", { class: "badge worker-state", "data-state": state }, STATE_TEXT[state] ?? state)),
    h("td", { class: "mono" }, worker.name),
    h("td", {}, kindText(worker)),
    h("td", {}, runsCell(worker)),
    h("td", {}, leasesCell(worker)),
    h("td", { title: formatTime(worker.last_seen_at) }, seen),
    h("td", { class: "cell-created" }, formatTime(worker.started_at)),
    h("td", { class: "muted" }, worker.version || "–"),
  );
}

/** Show the processes now; returns the seconds until the next read. */
async function refresh() {
  const data = await api("GET", "/workers");
  body.replaceChildren(...data.results.map(row));
  document.getElementById("workers-empty").hidden = data.results.length > 0;
  show(failure, "");
  return data.heartbeat_seconds;
}

async function main() {
  for (;;) {
    let wait = 5;
    try {
      wait = await refresh();
    } catch (error) {
      show(failure, error.message);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, wait) * 1000));
  }
}

main();
