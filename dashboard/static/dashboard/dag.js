// A workflow's nodes as a left-to-right graph: one column per depth (the longest
// path from a root), edges drawn as curves, each node a card with its status.

import { format, gettext } from "./i18n.js";
import { STATUS_LABELS, formatSeconds, h } from "./ui.js";

const CARD = { width: 192, height: 62 };
const GAP = { x: 36, y: 18 };
const SVG = "http://www.w3.org/2000/svg";

/** Column and row of each node id, from the definition's nodes and edges. */
export function layout(definition) {
  const ids = (definition.nodes ?? []).map((node) => node.id);
  const parents = new Map(ids.map((id) => [id, []]));
  const edges = (definition.edges ?? []).filter((e) => parents.has(e.source) && parents.has(e.target));
  for (const edge of edges) parents.get(edge.target).push(edge.source);
  const depth = new Map();
  const visit = (id, path) => {
    if (depth.has(id)) return depth.get(id);
    if (path.has(id)) return 0; // a cycle: the API rejects it; draw something anyway
    path.add(id);
    const value = Math.max(-1, ...parents.get(id).map((parent) => visit(parent, path))) + 1;
    path.delete(id);
    depth.set(id, value);
    return value;
  };
  const columns = [];
  for (const id of ids) {
    const column = visit(id, new Set());
    (columns[column] ??= []).push(id);
  }
  const tallest = Math.max(1, ...columns.map((column) => column?.length ?? 0));
  const positions = new Map();
  columns.forEach((column = [], x) => {
    const offset = (tallest - column.length) / 2;
    column.forEach((id, y) => positions.set(id, { x, y: y + offset }));
  });
  return { positions, edges, columns: columns.length, rows: tallest };
}

export class DagView {
  constructor(container, definition, { showStatus = true } = {}) {
    this.container = container;
    this.cards = new Map();
    this.states = new Map();
    this.showStatus = showStatus;
    this.render(definition);
  }

  render(definition) {
    const { positions, edges, columns, rows } = layout(definition);
    const width = columns * CARD.width + Math.max(0, columns - 1) * GAP.x;
    const height = rows * CARD.height + Math.max(0, rows - 1) * GAP.y;
    const canvas = h("div", { class: "dag-canvas", style: `width:${width}px;height:${height}px` });
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.classList.add("dag-edges");
    const point = ({ x, y }) => ({ left: x * (CARD.width + GAP.x), top: y * (CARD.height + GAP.y) });
    this.edges = [];
    for (const edge of edges) {
      const from = point(positions.get(edge.source));
      const to = point(positions.get(edge.target));
      const x1 = from.left + CARD.width;
      const y1 = from.top + CARD.height / 2;
      const x2 = to.left;
      const y2 = to.top + CARD.height / 2;
      const bend = Math.max(24, (x2 - x1) / 2);
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`);
      path.dataset.source = edge.source;
      svg.append(path);
      this.edges.push(path);
    }
    canvas.append(svg);
    this.cards.clear();
    for (const node of definition.nodes ?? []) {
      const { left, top } = point(positions.get(node.id));
      const card = this.card(node);
      card.style.left = `${left}px`;
      card.style.top = `${top}px`;
      canvas.append(card);
      this.cards.set(node.id, card);
    }
    this.container.replaceChildren(canvas);
  }

  card(node) {
    const card = h(
      "div",
      { class: "dag-node", "data-node-id": node.id, "data-status": this.showStatus ? "pending" : "" },
      h("div", { class: "dag-node-top" },
        h("span", { class: "dag-node-id", title: node.id }, node.id),
        this.showStatus ? h("span", { class: "dag-node-status" }, STATUS_LABELS.pending) : null),
      h("div", { class: "dag-node-bottom" },
        h("span", { class: "dag-node-type" }, node.type),
        h("span", { class: "dag-node-duration" }, "")),
    );
    return card;
  }

  /** Apply a `node` message (or a node of the execution detail) to its card. */
  update(message) {
    const card = this.cards.get(message.node_id);
    if (!card) return;
    const state = { ...this.states.get(message.node_id), ...message };
    if (message.status === "running") delete state.duration;
    this.states.set(message.node_id, state);
    card.dataset.status = state.status;
    card.querySelector(".dag-node-status").textContent = STATUS_LABELS[state.status] ?? state.status;
    const details = [];
    if (state.attempt > 1) details.push(format(gettext("attempt %(attempt)s"), { attempt: state.attempt }));
    if (state.duration !== undefined && state.duration !== null) details.push(formatSeconds(state.duration));
    card.querySelector(".dag-node-duration").textContent = details.join(" · ");
    card.title = state.error ? `${message.node_id}: ${state.error}` : message.node_id;
    for (const path of this.edges) {
      if (path.dataset.source === message.node_id) path.dataset.status = state.status;
    }
  }

  /** How many nodes have finished (completed, skipped, or ended otherwise). */
  summary() {
    const total = this.cards.size;
    const done = [...this.states.values()].filter((s) => ["completed", "skipped"].includes(s.status)).length;
    return { total, done };
  }
}
