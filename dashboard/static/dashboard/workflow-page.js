// Create or edit a workflow (validated by the API, its errors shown by their
// fields), preview its graph, and start an execution of it.

import { ApiError, api } from "./api.js";
import { DagView } from "./dag.js";
import { format, gettext, ngettext } from "./i18n.js";
import { badge, formatAgo, formatSeconds, h, parseJson, show } from "./ui.js";

const $ = (id) => document.getElementById(id);
const workflowId = $("workflow-page").dataset.workflowId;
const form = $("workflow-form");

const STARTER = {
  nodes: [
    { id: "hello", type: "log", params: { message: "Hello", level: "info" } },
    { id: "wait", type: "delay", params: { seconds: 2 } },
    { id: "pick", type: "transform", params: { expression: "input" } },
  ],
  edges: [
    { source: "hello", target: "wait" },
    { source: "wait", target: "pick" },
  ],
};

/** Show each field's messages under it; the rest at the top of the form. */
function showErrors(formElement, summary, data) {
  for (const slot of formElement.querySelectorAll("[data-error-for]")) show(slot, "");
  const general = [];
  for (const [field, messages] of Object.entries(data ?? {})) {
    const slot = formElement.querySelector(`[data-error-for="${field}"]`);
    const text = [].concat(messages).join(" ");
    if (slot) show(slot, text);
    else general.push(text);
  }
  show(summary, general.join(" "));
}

function definitionError(text) {
  const slot = form.querySelector('[data-error-for="definition"]');
  show(slot, text);
}

function preview() {
  const parsed = parseJson($("definition").value);
  if (parsed.error || !Array.isArray(parsed.value?.nodes)) {
    definitionError(parsed.error ?? gettext("The definition needs a \"nodes\" list."));
    $("preview-note").textContent = gettext("Fix the definition to see its graph.");
    return null;
  }
  definitionError("");
  const count = parsed.value.nodes.length;
  $("preview-note").textContent = format(ngettext("%(count)s node", "%(count)s nodes", count), { count });
  new DagView($("preview"), parsed.value, { showStatus: false });
  return parsed.value;
}

async function save(event) {
  event.preventDefault();
  $("saved").hidden = true;
  const definition = preview();
  if (!definition) return;
  const body = {
    name: $("name").value,
    description: $("description").value,
    retry_on_worker_loss: $("retry_on_worker_loss").checked,
    definition,
  };
  $("save").disabled = true;
  try {
    const saved = workflowId
      ? await api("PUT", `/workflows/${workflowId}`, body)
      : await api("POST", "/workflows", body);
    if (!workflowId) return window.location.assign(`/workflows/${saved.id}/?created=1`);
    showErrors(form, $("form-error"), {});
    $("workflow-title").textContent = saved.name;
    $("saved").hidden = false;
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) showErrors(form, $("form-error"), error.data);
    else show($("form-error"), error.message);
  } finally {
    $("save").disabled = false;
  }
}

async function start(event) {
  event.preventDefault();
  const startForm = $("start-form");
  const parsed = parseJson($("input_data").value);
  if (parsed.error) return showErrors(startForm, $("start-error"), { input_data: parsed.error });
  $("start").disabled = true;
  try {
    const execution = await api("POST", "/executions", { workflow_id: workflowId, input_data: parsed.value });
    window.location.assign(`/executions/${execution.id}/`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) showErrors(startForm, $("start-error"), error.data);
    else show($("start-error"), error.message);
    $("start").disabled = false;
  }
}

async function showRecent() {
  const page = await api("GET", `/executions?workflow=${workflowId}`);
  const body = document.querySelector("#recent tbody");
  for (const execution of page.results.slice(0, 8)) {
    const link = `/executions/${execution.id}/`;
    body.append(
      h("tr", { "data-execution-id": execution.id },
        h("td", {}, badge(execution.status)),
        h("td", {}, h("a", { href: link }, formatAgo(execution.created_at))),
        h("td", { class: "num" }, formatSeconds(execution.execution_time))),
    );
  }
  $("recent-empty").hidden = page.results.length > 0;
}

async function main() {
  let workflow = { name: "", description: "", retry_on_worker_loss: false, definition: STARTER };
  if (workflowId) workflow = await api("GET", `/workflows/${workflowId}`);
  $("name").value = workflow.name;
  $("description").value = workflow.description;
  $("retry_on_worker_loss").checked = workflow.retry_on_worker_loss;
  $("definition").value = JSON.stringify(workflow.definition, null, 2);
  $("workflow-fields").disabled = false; // loaded: editing cannot be overwritten any more
  if (new URLSearchParams(location.search).has("created")) show($("saved"), gettext("Created. Start an execution on the right."));
  preview();
  $("definition").addEventListener("input", preview);
  form.addEventListener("submit", save);
  if (workflowId) {
    $("start-form").addEventListener("submit", start);
    await showRecent();
  }
}

main().catch((error) => show($("form-error"), error.message));
