// The workflows list.

import { apiAll } from "./api.js";
import { formatAgo, h, show } from "./ui.js";

async function main() {
  const workflows = await apiAll("/workflows");
  const body = document.querySelector("#workflows tbody");
  for (const workflow of workflows) {
    const link = `/workflows/${workflow.id}/`;
    const row = h(
      "tr",
      { class: "row-link", "data-workflow-id": workflow.id },
      h("td", {}, h("a", { href: link }, workflow.name)),
      h("td", { class: "muted" }, workflow.description),
      h("td", { class: "num" }, workflow.definition.nodes?.length ?? 0),
      h("td", { title: workflow.updated_at }, formatAgo(workflow.updated_at)),
    );
    row.addEventListener("click", (event) => {
      if (!event.target.closest("a")) window.location.assign(link);
    });
    body.append(row);
  }
  document.getElementById("workflows-empty").hidden = workflows.length > 0;
}

main().catch((error) => show(document.getElementById("workflows-error"), error.message));
